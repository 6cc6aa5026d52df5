"""Run the Hub emulator: ``python -m backends.hf [--port N] [--token T] [--lfs-threshold BYTES]``.

Prints ``READY http://127.0.0.1:PORT`` and serves until Ctrl-C. Point the client at it
with ``HF_ENDPOINT=http://127.0.0.1:PORT`` or ``HfApi(endpoint=...)``.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from backends._process import ServerProcess

#: Token the fixtures use (the emulator accepts any token unless started with --token).
TOKEN = "hf_emulator_token"


def hf_storage_options(endpoint: str, token: str = TOKEN) -> dict[str, Any]:
    """robostore/HfFileSystem storage options for the emulator at ``endpoint``."""
    return {"endpoint": endpoint, "token": token}


class HfServer(ServerProcess):
    """The emulator in its own process (``python -m backends.hf``)."""

    def __init__(self, *args: str) -> None:
        super().__init__("backends.hf", args)

    def storage_options(self) -> dict[str, Any]:
        return hf_storage_options(self.url)

    def new_repo(self, org: str = "robostore", prefix: str = "test") -> str:
        """Create a dataset repo with a fresh name; returns ``org/name``."""
        from huggingface_hub import HfApi

        repo_id = f"{org}/{prefix}-{uuid.uuid4().hex[:12]}"
        HfApi(endpoint=self.url, token=TOKEN).create_repo(repo_id, repo_type="dataset")
        return repo_id

    def commit_count(self, repo_id: str, revision: str = "main") -> int:
        """Commits on ``revision`` of dataset ``repo_id`` (including the initial one)."""
        from huggingface_hub import HfApi

        return len(
            HfApi(endpoint=self.url, token=TOKEN).list_repo_commits(repo_id, repo_type="dataset", revision=revision)
        )


def main(argv: list[str] | None = None) -> None:
    from backends._process import announce, serve_until_stopped
    from backends.hf.emulator import HubEmulator

    parser = argparse.ArgumentParser(description="Hugging Face Hub emulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches EOF")
    parser.add_argument("--token", default=None, help="require this bearer token on every request")
    parser.add_argument("--lfs-threshold", type=int, default=None, help="upload files this large through LFS")
    args = parser.parse_args(argv)
    hub = HubEmulator(port=args.port, token=args.token, lfs_threshold=args.lfs_threshold).start()
    announce(hub.url)
    serve_until_stopped(hub.stop, args.watch_stdin)
