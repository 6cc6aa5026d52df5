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
    "LeaseError",
    "NotFound",
    "PathError",
    "RobostoreError",
    "SchemaError",
    "StoreError",
    "VideoError",
    "__version__",
]
