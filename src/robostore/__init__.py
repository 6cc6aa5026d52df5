"""robostore: LeRobot v3.0 datasets on any fsspec backend, fed to PyTorch.

Heavy optional parts (torch readers, the recorder, the frame cache) are
imported on first use, so ``import robostore`` needs only the core dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from robostore.backends import open_store, register_backend
from robostore.convert import convert
from robostore.errors import (
    CorruptDataset,
    LeaseError,
    NotFound,
    PathError,
    RobostoreError,
    SchemaError,
    StoreError,
    VideoError,
)
from robostore.meta import DatasetMeta

# Imported eagerly (it needs only core dependencies) because the function shadows the
# subpackage's name: ``robostore.mirror(src, dst)``; a lazy import would leave the
# package there instead. Helpers: ``from robostore.mirror import MirrorReport``.
from robostore.mirror import MirrorReport, mirror
from robostore.store import FileInfo, Store
from robostore.validate import ValidationReport, validate

__version__ = "0.1.0"

#: Public names served lazily: name -> module that defines it.
_LAZY: dict[str, str] = {
    "Dataset": "robostore.torch",  # torch is an optional extra
    "FrameCache": "robostore.cache",  # zarr is an optional extra
    "StreamingDataset": "robostore.torch",
    "Recorder": "robostore.record",
    "VideoOptions": "robostore.video.options",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robostore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [  # noqa: PLE0604 - `*_LAZY` spreads the dict's keys, which are names
    "CorruptDataset",
    "DatasetMeta",
    "FileInfo",
    "LeaseError",
    "MirrorReport",
    "NotFound",
    "PathError",
    "RobostoreError",
    "SchemaError",
    "Store",
    "StoreError",
    "ValidationReport",
    "VideoError",
    "__version__",
    "convert",
    "mirror",
    "open_store",
    "register_backend",
    "validate",
    *_LAZY,
]
