"""Hostile input and surroundings (issue 15): every case generated from a real sample, with limits checked."""
