"""`python -m tracelog`."""

from tracelog.cli import main_exit

main_exit()
