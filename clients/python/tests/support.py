"""The real ``deis-workflow up`` on free loopback ports with its own data
directory (the Python twin of ``tests/support/up.rs``)."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Optional

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def workflow_binary() -> str:
    """The ``deis-workflow`` binary named by ``DEIS_WORKFLOW_BIN``."""
    path = os.environ.get("DEIS_WORKFLOW_BIN", "")
    if not path:
        raise RuntimeError(
            "set DEIS_WORKFLOW_BIN to a deis-workflow binary "
            "(cargo build -p deis-workflow; clients/python/test.sh does this)"
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"DEIS_WORKFLOW_BIN={path} is not an executable")
    return path


class UpServer:
    """A running ``deis-workflow up``; :meth:`interrupt` stops it."""

    def __init__(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="deis-pyclient-")
        self._stderr: IO[bytes] = open(os.path.join(self.data_dir, "up.stderr"), "w+b")
        args = [
            workflow_binary(),
            "up",
            "--controller-addr", "127.0.0.1:0",
            "--builder-addr", "127.0.0.1:0",
            "--xds-addr", "127.0.0.1:0",
            "--metrics-addr", "127.0.0.1:0",
            "--registry-addr", "127.0.0.1:0",
            "--logger-addr", "127.0.0.1:0",
            "--forward-addr", "127.0.0.1:0",
            "--router-port", str(free_port()),
            "--router-https-port", str(free_port()),
            "--registration-mode", "enabled",
            "--data-dir", os.path.join(self.data_dir, "data"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "RUST_LOG": "warn", "NO_COLOR": "1"},
        )
        self.banner: list[str] = []
        lines: queue.Queue[Optional[str]] = queue.Queue()
        # Keep reading stdout for as long as the server runs so it never
        # blocks on a full pipe.
        self._reader = threading.Thread(target=self._drain, args=(lines,), daemon=True)
        self._reader.start()
        url: Optional[str] = None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self._fail("no ready banner")
            assert line is not None
            self.banner.append(line)
            stripped = line.strip()
            if stripped.startswith("Controller"):
                url = stripped[len("Controller"):].strip()
            if "Ctrl-C" in line:
                break
        if not url:
            self._fail("no controller URL in the banner")
        assert url is not None
        self.url: str = url

    def _drain(self, lines: queue.Queue[Optional[str]]) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    def _fail(self, why: str) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        stderr = self.stderr()
        self.kill()
        raise RuntimeError(f"deis-workflow up: {why}:\n" + "\n".join(self.banner) + "\n" + stderr)

    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT); waits for the exit and returns its status."""
        try:
            self.process.send_signal(signal.SIGINT)
            return self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL (if still running) and remove the data directory."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if not self._reader.is_alive() and self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()
        if os.environ.get("DEIS_KEEP_DATA"):
            print(f"kept {self.data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
