"""pytest fixtures: every backend robostore supports, on loopback, with a fresh root per test.

Session fixtures start each server once, on first use, and stop it at the end of the
session (the servers also exit by themselves if pytest dies):

* ``s3_server`` — moto (:class:`backends.s3.S3Server`)
* ``gcs_server`` — fake-gcs-server (:class:`backends.gcs.GCSServer`)
* ``hf_server`` — the Hub emulator (:class:`backends.hf.HfServer`)

Per-test fixtures:

* ``backend_url`` — a function ``backend_url(name, **options) -> (url, storage_options)``
  giving a fresh, empty dataset root on backend ``name`` (one of :data:`BACKENDS`):
  a new temp folder, memory prefix, S3/GCS bucket or Hub dataset repo. ``options`` are
  added to the storage options (e.g. ``commit_every_files`` on hf).
* ``store_url`` — ``(url, storage_options)`` parametrised over all :data:`BACKENDS`.
* ``make_store`` — ``make_store(**options) -> Store`` on ``store_url``'s root, closed
  at teardown.

Use them from a test module by parametrising your own fixture::

    @pytest.fixture(params=BACKENDS)
    def dataset_url(request, backend_url):
        url, options = backend_url(request.param)
        upload_folder(DATA / "video_basic", url, options)
        return url, options

Servers start only for the backends a test run touches: ``-m "not remote"`` (or
``-k local``) starts none.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# gcsfs reads this at import; without it every new bucket waits on a 60 s gRPC timeout.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import pytest

from backends.gcs import GCSServer
from backends.hf import HfServer
from backends.s3 import S3Server

BACKENDS = ("local", "memory", "s3", "gcs", "hf")
REMOTE = ("s3", "gcs", "hf")

UrlAndOptions = tuple[str, dict[str, Any]]


def backend_params(names: tuple[str, ...] = BACKENDS) -> list[Any]:
    """``pytest.param`` objects for ``names``, remote ones marked ``remote``."""
    return [pytest.param(n, id=n, marks=[pytest.mark.remote] if n in REMOTE else []) for n in names]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    with GCSServer() as server:
        yield server


@pytest.fixture(scope="session")
def hf_server() -> Iterator[HfServer]:
    with HfServer() as server:
        yield server


def new_root(name: str, request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> UrlAndOptions:
    """A fresh, empty dataset root on backend ``name``: ``(url, storage_options)``."""
    tag = uuid.uuid4().hex[:12]
    if name == "local":
        root = tmp_path / f"dataset-{tag}"
        return str(root), dict(options)
    if name == "memory":
        return f"memory://robostore-test-{tag}/dataset", dict(options)
    if name == "s3":
        server: Any = request.getfixturevalue("s3_server")
        return f"s3://{server.new_bucket()}/dataset", {**server.storage_options(), **options}
    if name == "gcs":
        server = request.getfixturevalue("gcs_server")
        return f"gs://{server.new_bucket()}/dataset", {**server.storage_options(), **options}
    if name == "hf":
        server = request.getfixturevalue("hf_server")
        return f"hf://datasets/{server.new_repo()}", {**server.storage_options(), **options}
    raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., UrlAndOptions]:
    """``backend_url(name, **options) -> (url, storage_options)`` for a fresh dataset root."""

    def make(name: str, **options: Any) -> UrlAndOptions:
        return new_root(name, request, tmp_path, **options)

    return make


@pytest.fixture(params=backend_params())
def store_url(request: pytest.FixtureRequest, backend_url: Callable[..., UrlAndOptions]) -> UrlAndOptions:
    """A fresh dataset root on each backend in turn."""
    return backend_url(request.param)


@pytest.fixture
def make_store(store_url: UrlAndOptions) -> Iterator[Callable[..., Any]]:
    """``make_store(**options)``: a Store on ``store_url``'s root, closed at teardown."""
    from robostore.backends import open_store

    opened = []

    def make(**options: Any) -> Any:
        url, base = store_url
        store = open_store(url, {**base, **options})
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def upload_folder(local: str | os.PathLike[str], url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Copy every file under the local folder ``local`` to the dataset root ``url``.

    Data files go first and ``meta/`` last, in one commit on the Hub. Returns the
    relative paths written.
    """
    from robostore.backends import open_store

    base = Path(local)
    files = sorted(
        (p for p in base.rglob("*") if p.is_file()),
        key=lambda p: (p.relative_to(base).parts[0] == "meta", p.as_posix()),
    )
    written = []
    with open_store(url, storage_options) as store:
        for path in files:
            rel = path.relative_to(base).as_posix()
            store.write(rel, path)
            written.append(rel)
        store.commit(f"upload {base.name}")
    return written
