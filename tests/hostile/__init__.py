"""Hostile input and surroundings: every case generated from a real sample, with limits checked."""
