"""Exit statuses and the errors that map to them."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Every way tracelog can end; documented in the README."""

    OK = 0
    ERROR = 1
    USAGE = 2
    INPUT = 3
    BAD_LINES = 4
    PERMISSION = 5
    UNAVAILABLE = 6
    DOCTOR_FAILED = 7
    OUTPUT = 8
    INTERRUPTED = 130
    TERMINATED = 143


class TracelogError(Exception):
    """An error the user can fix: printed as one line, never a traceback."""

    status = ExitStatus.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class InputError(TracelogError):
    """An input file is missing, unreadable or corrupt."""

    status = ExitStatus.INPUT


class BadLineError(TracelogError):
    """`--strict`: a line looked like a TRACE event but could not be parsed."""

    status = ExitStatus.BAD_LINES


class UsageError(TracelogError):
    """Options that cannot go together or name something that does not exist."""

    status = ExitStatus.USAGE


class OutputError(TracelogError):
    """The output could not be written (a full disk, a closed or broken file)."""

    status = ExitStatus.OUTPUT


class PermissionDenied(TracelogError):
    """Changing or reading the firewall needs root (CAP_NET_ADMIN)."""

    status = ExitStatus.PERMISSION


class Unavailable(TracelogError):
    """A tool, library or daemon tracelog needs is not installed or not answering."""

    status = ExitStatus.UNAVAILABLE


class FirewallError(TracelogError):
    """The kernel or an iptables tool refused a rule change."""

    status = ExitStatus.ERROR
