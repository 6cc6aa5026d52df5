"""Google Cloud Storage (``gs://bucket/prefix``, also ``gcs://``) through gcsfs.

Storage options go straight to :class:`gcsfs.GCSFileSystem` (``token`` — a credentials
file, ``"google_default"``, ``"anon"``, ... —, ``project``, ``endpoint_url``,
``requester_pays``, ...). robostore adds defaults the user's options override:

* ``requests_timeout``: an :class:`aiohttp.ClientTimeout` with a 10 s connect timeout and
  a 20 s limit on silence between bytes (gcsfs passes it to every request; its own
  default is no timeout at all). gcsfs retries transient failures itself (6 attempts);
* ``use_listings_cache``: off, so listings and ``info`` always reflect the bucket.

To talk to fake-gcs-server, set ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` before gcsfs
is imported (see backends/gcs/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import gcsfs

from robostore.store import AtomicWriter, FileObjectWriter, Store, UploadChecksum

DEFAULT_OPTIONS: dict[str, Any] = {
    "requests_timeout": aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=20),
    "use_listings_cache": False,
}


class GCSStore(Store):
    """A dataset under a GCS prefix.

    Object uploads are atomic, so :meth:`write` writes in place. The content token is
    the object's ``md5Hash``: it changes exactly when the bytes change, and equal
    content uploaded twice keeps its token, which lets mirroring skip unchanged files
    (``generation`` changes on every upload even of identical bytes). Composite objects
    have no md5; their token is ``crc32c`` plus the size, then ``generation``.
    """

    schemes = ("gs", "gcs")
    open_block_size = 4 * 2**20
    max_concurrency = 64
    client_errors = (aiohttp.ClientError, gcsfs.retry.HttpError)

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[gcsfs.GCSFileSystem, str]:
        fs = gcsfs.GCSFileSystem(**{**DEFAULT_OPTIONS, **storage_options})
        return fs, fs._strip_protocol(url).rstrip("/")

    def upload_checksum(self, *, part_size: int | None = None, file_size: int | None = None) -> UploadChecksum:
        # Every upload that is not a composite object gets an md5Hash of its content.
        return UploadChecksum(md5=True)

    def open_writer(self, path: str, part_size: int) -> AtomicWriter:
        return FileObjectWriter(self, path, part_size)

    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        if detail.get("md5Hash"):
            return str(detail["md5Hash"])
        if detail.get("crc32c"):
            return f"crc32c:{detail['crc32c']}-{detail.get('size')}"
        if detail.get("generation"):
            return f"generation:{detail['generation']}"
        return super()._token(path, detail)
