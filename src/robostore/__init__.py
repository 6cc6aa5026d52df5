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

__all__ = [
    "CorruptDataset",
    "Dataset",
    "LeaseError",
    "NotFound",
    "PathError",
    "RobostoreError",
    "SchemaError",
    "StoreError",
    "VideoError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # torch is an optional extra: import the datasets only when asked for.
    if name == "Dataset":
        from robostore.torch import Dataset

        return Dataset
    raise AttributeError(f"module 'robostore' has no attribute {name!r}")
