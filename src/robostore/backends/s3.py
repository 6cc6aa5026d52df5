"""Amazon S3 and S3-compatible stores (``s3://bucket/prefix``) through s3fs.

Storage options go straight to :class:`s3fs.S3FileSystem` (``key``, ``secret``,
``token``, ``endpoint_url``, ``anon``, ``client_kwargs``, ...). robostore adds tuned
defaults that any option given by the user overrides:

* ``config_kwargs``: botocore's ``connect_timeout`` (10 s), ``read_timeout`` (15 s: the
  longest silence tolerated inside one response) and ``retries`` (2 attempts, "standard"
  mode), merged key by key with the user's. s3fs retries timeouts itself up to 5 times
  around botocore's attempts, so a server that stops answering fails after at most
  about 5 x 2 x 15 s; lower ``read_timeout`` for a tighter bound;
* ``use_listings_cache``: off, so listings and ``info`` always reflect the bucket.

Uploads get a deadline of their own (:meth:`S3Store.upload_deadline`): botocore sends
PUTs with ``Expect: 100-continue`` and aiohttp waits for the ``100 Continue`` (and for
a full socket to drain) with no timeout at all, so against a server that stops
answering a write would hang forever despite ``read_timeout``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import s3fs
from botocore.exceptions import BotoCoreError, ClientError
from fsspec.exceptions import FSTimeoutError

from robostore.store import AtomicWriter, FileObjectWriter, Store, UploadChecksum

#: botocore client settings robostore uses unless the user's ``config_kwargs`` say otherwise.
DEFAULT_CONFIG: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 15,
    "retries": {"max_attempts": 2, "mode": "standard"},
    # botocore's default pool (10 connections) would cap read_many's concurrency.
    "max_pool_connections": 64,
}
DEFAULT_OPTIONS: dict[str, Any] = {"use_listings_cache": False}
#: s3fs's ``put_file`` part size (multipart from two parts up): the ETag of a local file
#: uploaded by :meth:`S3Store.write` is the multipart ETag for parts of this size.
PUT_FILE_PART_SIZE = 50 * 2**20
#: Slowest upload rate tolerated before a write is given up (bytes/s), see upload_deadline.
UPLOAD_FLOOR_BPS = 64 * 1024


def _client_errors() -> tuple[type[BaseException], ...]:
    try:
        from aiohttp import ClientError as AiohttpError
    except ImportError:  # pragma: no cover - aiobotocore depends on aiohttp
        return (BotoCoreError, ClientError)
    return (BotoCoreError, ClientError, AiohttpError)


class S3Store(Store):
    """A dataset under an S3 prefix.

    A single PUT is atomic on S3, so :meth:`write` needs no temporary object; local
    files above s3fs's block size are uploaded in multipart (``put_file``). The content
    token is the object's ETag (an md5 for single-part uploads, ``md5-N`` for multipart).
    """

    schemes = ("s3", "s3a")
    open_block_size = 4 * 2**20
    max_concurrency = 64
    client_errors = _client_errors()

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[s3fs.S3FileSystem, str]:
        options = {**DEFAULT_OPTIONS, **storage_options}
        options["config_kwargs"] = {**DEFAULT_CONFIG, **(storage_options.get("config_kwargs") or {})}
        fs = s3fs.S3FileSystem(**options)
        if url.startswith("s3a://"):
            url = "s3://" + url[len("s3a://") :]
        return fs, fs._strip_protocol(url).rstrip("/")

    def upload_deadline(self, nbytes: int) -> float:
        """Seconds one write of ``nbytes`` may take, retries included, before it fails.

        Each botocore attempt may spend ``connect_timeout + read_timeout`` on silence;
        the deadline allows two such rounds per attempt (s3fs retries timed-out calls
        by itself: it gets one more try, not its usual five) plus the bytes moving as
        slowly as :data:`UPLOAD_FLOOR_BPS`.
        """
        config = self.fs.config_kwargs
        silence = float(config.get("connect_timeout") or 60) + float(config.get("read_timeout") or 60)
        attempts = int((config.get("retries") or {}).get("max_attempts") or 1)
        return 2 * silence * attempts + nbytes / UPLOAD_FLOOR_BPS

    def upload_checksum(self, *, part_size: int | None = None, file_size: int | None = None) -> UploadChecksum:
        # A single PUT's ETag is the md5; a multipart upload's is md5(part md5s)-N.
        if file_size is not None:
            part_size = PUT_FILE_PART_SIZE if file_size >= 2 * PUT_FILE_PART_SIZE else None
        return UploadChecksum(md5=part_size is None, etag_part_size=part_size)

    def open_writer(self, path: str, part_size: int) -> AtomicWriter:
        return FileObjectWriter(self, path, part_size)

    def _write_bytes(self, full: str, data: bytes) -> None:
        self._upload(lambda timeout: self.fs.pipe_file(full, data, timeout=timeout), len(data))

    def _write_file(self, full: str, local: str) -> None:
        self._upload(lambda timeout: self.fs.put_file(local, full, timeout=timeout), os.path.getsize(local))

    def _upload(self, call: Callable[[float], None], nbytes: int) -> None:
        deadline = self.upload_deadline(nbytes)
        try:
            call(deadline)
        except FSTimeoutError as exc:  # becomes a StoreError naming the path (Store._errors)
            raise TimeoutError(
                f"the upload of {nbytes} bytes did not finish within {deadline:.0f} s: the server stopped "
                "answering or the link is slower than 64 KiB/s (raise config_kwargs read_timeout to wait longer)"
            ) from exc

    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        etag = detail.get("ETag") or detail.get("etag")
        return str(etag).strip('"') if etag else super()._token(path, detail)
