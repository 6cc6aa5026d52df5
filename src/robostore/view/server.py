"""Running the viewer app with uvicorn: in the foreground (the CLI) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette

from robostore.store import Store
from robostore.view.app import create_app

#: The default address: this machine only. Sharing on a network is an explicit --host.
DEFAULT_HOST = "127.0.0.1"


def bind(host: str = DEFAULT_HOST, port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def address(sock: socket.socket) -> str:
    """The ``http://host:port`` a bound socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: Starlette) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))


def run(url: str | Store, storage_options: Mapping[str, Any] | None, sock: socket.socket) -> None:
    """Serve the viewer of ``url`` on ``sock`` until interrupted (Ctrl-C)."""
    _server(create_app(url, storage_options)).run(sockets=[sock])


class BackgroundViewer:
    """The viewer served from a daemon thread; :attr:`url` is its address. Use as a context manager."""

    def __init__(
        self,
        url: str | Store,
        storage_options: Mapping[str, Any] | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
    ) -> None:
        self._sock = bind(host, port)
        self.url = address(self._sock)
        self.app = create_app(url, storage_options)
        self._server = _server(self.app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="robostore-view", daemon=True
        )
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError("the viewer's web server did not start")

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join()
        self._sock.close()

    def __enter__(self) -> BackgroundViewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
