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

# The function shadows the subpackage's name on purpose: ``robostore.mirror(src, dst)``.
# Import helpers from the subpackage: ``from robostore.mirror import MirrorReport``.
from robostore.mirror import MirrorReport, mirror

__version__ = "0.1.0"

__all__ = [
    "CorruptDataset",
    "LeaseError",
    "MirrorReport",
    "NotFound",
    "PathError",
    "RobostoreError",
    "SchemaError",
    "StoreError",
    "VideoError",
    "__version__",
    "mirror",
]
