"""Backends: one :class:`~robostore.store.Store` subclass per URL scheme.

The registry maps a URL scheme to a store class. Built-in backends are imported lazily
(so ``s3fs`` is only needed for ``s3://``). Third parties add schemes through the
``robostore.backends`` entry-point group (``scheme = "package.module:StoreClass"``) or
:func:`register_backend`. Any other fsspec protocol gets the generic :class:`Store`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from fsspec.utils import get_protocol

from robostore.errors import StoreError
from robostore.store import Store

_BUILTIN: dict[str, str] = {
    "file": "robostore.backends.local:LocalStore",
    "local": "robostore.backends.local:LocalStore",
    "memory": "robostore.backends.memory:MemoryStore",
    "s3": "robostore.backends.s3:S3Store",
    "s3a": "robostore.backends.s3:S3Store",
    "gs": "robostore.backends.gcs:GCSStore",
    "gcs": "robostore.backends.gcs:GCSStore",
    "hf": "robostore.backends.hf:HfStore",
}
_registered: dict[str, type[Store] | str] = {}


def register_backend(scheme: str, store: type[Store] | str) -> None:
    """Serve URLs of ``scheme`` with ``store`` (a class or ``"module:Class"``)."""
    _registered[scheme] = store


def _load(target: type[Store] | str, scheme: str) -> type[Store]:
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise StoreError(
            f"the {scheme}:// backend needs an optional dependency that is not installed "
            f"({exc.name}); install it with: pip install 'robostore[{_extra(scheme)}]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Store)):
        raise StoreError(f"backend {target!r} for {scheme}:// is not a robostore Store class")
    return cls


def _extra(scheme: str) -> str:
    return {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "hf": "hf"}.get(scheme, "all")


def store_class(scheme: str) -> type[Store]:
    """The store class serving ``scheme``: registered, built in, entry point, or generic."""
    if scheme in _registered:
        return _load(_registered[scheme], scheme)
    if scheme in _BUILTIN:
        return _load(_BUILTIN[scheme], scheme)
    for ep in entry_points(group="robostore.backends"):
        if ep.name == scheme:
            return _load(ep.value, scheme)
    return Store


def open_store(url: str | Store, storage_options: Mapping[str, Any] | None = None) -> Store:
    """Open the dataset root ``url`` on the backend its scheme names.

    A plain path is local disk. ``storage_options`` pass straight to the fsspec
    filesystem (credentials, ``endpoint_url``, ...).
    """
    if isinstance(url, Store):
        return url
    url = str(url)
    scheme = "file" if "::" not in url and "://" not in url else get_protocol(url)
    return store_class(scheme).from_url(url, storage_options)


__all__ = ["open_store", "register_backend", "store_class"]
