"""tracelog's performance benchmark: large inputs made from the real captures, and the runner.

`python bench/run.py` from the repository root builds the inputs under
`bench/out/` (git-ignored) if they are missing, times tracelog against a
read-only loop and a naive regex script, and prints Markdown for the README.
"""
