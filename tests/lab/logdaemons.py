"""Private rsyslogd and systemd-journald instances that record the kernel log during a capture.

Both run with their own configuration and state in a temporary directory so
the machine's own logging (if any) is left alone, and both are stopped when
the ``with`` block ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.lab.netlab import run

RSYSLOG_FORMATS = {
    "traditional": "RSYSLOG_TraditionalFileFormat",
    "fileformat": "RSYSLOG_FileFormat",
}


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, so a daemon flushes what it holds; SIGKILL if it will not go within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Rsyslog:
    """rsyslogd reading the kernel log through imklog, as Debian's default configuration does.

    One input feeds two files, one per output template, so both renderings
    hold the same kernel records.
    """

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tl-rsyslog-"))
        self.files = {name: self.workdir / f"{name}.log" for name in RSYSLOG_FORMATS}
        self._process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """The rsyslog.conf text this instance runs with."""
        actions = "\n".join(
            f'*.* action(type="omfile" file="{self.files[name]}" template="{template}")'
            for name, template in RSYSLOG_FORMATS.items()
        )
        # permitNonKernelFacility keeps the marker records written to /dev/kmsg (facility user).
        kernel_input = 'module(load="imklog" permitNonKernelFacility="on")'
        return f'global(workDirectory="{self.workdir}")\n{kernel_input}\n{actions}\n'

    def __enter__(self) -> Rsyslog:
        conf = self.workdir / "rsyslog.conf"
        conf.write_text(self.config())
        self._process = subprocess.Popen(
            [
                "rsyslogd",
                "-n",
                "-f",
                str(conf),
                "-i",
                str(self.workdir / "rsyslogd.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        if self._process.poll() is not None:
            raise RuntimeError(f"rsyslogd exited at start with status {self._process.returncode}")
        return self

    def read(self, name: str) -> list[str]:
        """Lines written so far to the file of one template."""
        return self.files[name].read_text(errors="replace").splitlines()

    def stop(self) -> None:
        """Stop rsyslogd; it flushes its files on SIGTERM."""
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Journald:
    """systemd-journald started by hand, without systemd as PID 1.

    It runs in a private mount namespace with tmpfs over ``/run`` and
    ``/var/log/journal``, so its sockets and journal files never touch the
    real filesystem; ``journalctl`` is run inside the same mount namespace.
    """

    BINARY = "/lib/systemd/systemd-journald"

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def available(cls) -> bool:
        """Whether journald and journalctl are installed at all."""
        return os.access(cls.BINARY, os.X_OK) and shutil.which("journalctl") is not None

    def start(self) -> None:
        """Start journald; raises RuntimeError if it cannot run here."""
        script = (
            "mount -t tmpfs tmpfs /run && "
            "{ [ ! -d /var/log/journal ] || mount -t tmpfs tmpfs /var/log/journal; } && "
            "mkdir -p /run/systemd/journal /run/log/journal && "
            f"exec {self.BINARY}"
        )
        self._process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.5)
        if self._process.poll() is not None:
            raise RuntimeError(f"systemd-journald exited at start with status {self._process.returncode}")

    def journalctl(self, *args: str) -> list[str]:
        """Run journalctl against this journald's (private) journal."""
        if self._process is None:
            raise RuntimeError("journald is not running")
        argv = [
            "nsenter",
            "--mount",
            "--target",
            str(self._process.pid),
            "journalctl",
            "--no-pager",
            *args,
        ]
        return run(argv, timeout=30).stdout.splitlines()

    def stop(self) -> None:
        """Stop journald; its private tmpfs mounts vanish with its mount namespace."""
        if self._process is not None:
            stop_process(self._process)
            self._process = None
