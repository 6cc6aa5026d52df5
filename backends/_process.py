"""Run a server as a child process that cannot outlive its parent.

Every server in this folder is a small Python program (``python -m backends.<name>``)
that binds 127.0.0.1 on a free port, prints one line ``READY <url>`` on stdout, and
serves until it is told to stop. Two watchdogs make sure it stops:

* the parent keeps the child's stdin open; the child exits when it reads EOF, which
  happens as soon as the parent dies for any reason (even ``kill -9``);
* on Linux, grandchildren (the fake-gcs-server binary) get ``PR_SET_PDEATHSIG``, so the
  kernel terminates them when the Python server process dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
READY = "READY"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must be killed when this process dies (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def announce(url: str) -> None:
    """Tell the launching process that the server at ``url`` is ready."""
    print(f"{READY} {url}", flush=True)


def serve_until_stopped(stop: Callable[[], None], watch_stdin: bool) -> None:
    """Block until SIGINT/SIGTERM, or until stdin reaches EOF when ``watch_stdin``; then ``stop()``."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    if watch_stdin:

        def watch() -> None:
            with contextlib.suppress(Exception):
                while sys.stdin.buffer.read(4096):
                    pass
            done.set()

        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    while not done.wait(0.5):
        pass
    try:
        stop()
    finally:
        # Servers run non-daemon threads of their own; do not wait for them.
        os._exit(0)


class ServerProcess:
    """A server started as ``python -m <module> --port 0 --watch-stdin [args]``.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``url`` is the
    address the server announced.
    """

    def __init__(self, module: str, args: Sequence[str] = (), startup_timeout: float = 60.0) -> None:
        self.module = module
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", self.module, "--port", "0", "--watch-stdin", *self.args]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not log.isEnabledFor(logging.DEBUG) else None,
            env=env,
            cwd=str(REPO_ROOT),
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl(); no locks are taken
        )
        self.url = self._wait_ready()
        log.info("%s ready at %s (pid %d)", self.module, self.url, self._proc.pid)
        return self

    def _wait_ready(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        fd = self._proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                line += chunk
                if b"\n" in line:
                    first = line.split(b"\n", 1)[0].decode()
                    if first.startswith(READY + " "):
                        return first.split(" ", 1)[1].strip()
                    raise RuntimeError(f"{self.module} printed {first!r} instead of READY <url>")
            elif self._proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.module} did not start within {self.startup_timeout:.0f}s")

    def stop(self) -> None:
        """Stop the server (closing its stdin, then SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_server_args(description: str, argv: Sequence[str] | None = None) -> tuple[int, bool]:
    """The command line every server shares: ``--port`` (0 = any free port) and ``--watch-stdin``."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="exit when stdin reaches EOF (used by the test fixtures)"
    )
    args = parser.parse_args(argv)
    return args.port, args.watch_stdin
