"""Child processes that end with tracelog: a killed tracelog leaves no worker or monitor behind."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(signum: signal.Signals) -> None:
    """In a child: ask the kernel to send `signum` when the parent dies, however it dies (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
