"""GCS on loopback: fake-gcs-server (see README.md)."""

from backends.gcs.server import GCSServer, gcs_storage_options

__all__ = ["GCSServer", "gcs_storage_options"]
