"""robostore: LeRobot v3.0 datasets on any fsspec backend, fed to PyTorch."""

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

__version__ = "0.1.0"

# Imported on first use: recording needs PyAV, which `import robostore` must not.
_LAZY = {"Recorder": "robostore.record", "VideoOptions": "robostore.video.options"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robostore' has no attribute {name!r}")


__all__ = [
    "CorruptDataset",
    "LeaseError",
    "NotFound",
    "PathError",
    "Recorder",
    "RobostoreError",
    "SchemaError",
    "StoreError",
    "VideoError",
    "VideoOptions",
    "__version__",
]
