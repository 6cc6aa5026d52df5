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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import s3fs
from botocore.exceptions import BotoCoreError, ClientError

from robostore.store import Store

#: botocore client settings robostore uses unless the user's ``config_kwargs`` say otherwise.
DEFAULT_CONFIG: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 15,
    "retries": {"max_attempts": 2, "mode": "standard"},
}
DEFAULT_OPTIONS: dict[str, Any] = {"use_listings_cache": False}


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

    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        etag = detail.get("ETag") or detail.get("etag")
        return str(etag).strip('"') if etag else super()._token(path, detail)
