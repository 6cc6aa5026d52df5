"""moto's S3 in server mode on 127.0.0.1.

Run ``python -m backends.s3 [--port N]`` from the repository root: it prints
``READY http://127.0.0.1:PORT`` and serves until Ctrl-C.
"""

from __future__ import annotations

import uuid
from typing import Any

from backends._process import ServerProcess

#: moto accepts any credentials; these are what the fixtures pass.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


def s3_storage_options(endpoint_url: str) -> dict[str, Any]:
    """robostore/s3fs storage options for the server at ``endpoint_url``."""
    return {"endpoint_url": endpoint_url, "key": ACCESS_KEY, "secret": SECRET_KEY}


class S3Server(ServerProcess):
    """moto in its own process (``python -m backends.s3``)."""

    def __init__(self) -> None:
        super().__init__("backends.s3")

    def storage_options(self) -> dict[str, Any]:
        return s3_storage_options(self.url)

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a fresh name and return the name."""
        import s3fs

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())
        fs.mkdir(name)
        return name


def main(argv: list[str] | None = None) -> None:
    from moto.server import ThreadedMotoServer

    from backends._process import announce, parse_server_args, serve_until_stopped

    port, watch_stdin = parse_server_args("moto S3 server on 127.0.0.1", argv)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    announce(f"http://{host}:{bound}")
    serve_until_stopped(server.stop, watch_stdin)
