"""Packets as records: the `--format jsonl` contract, the flows they belong to, and the filters that pick them."""
