"""S3 on loopback: moto in server mode (see README.md)."""

from backends.s3.server import S3Server, s3_storage_options

__all__ = ["S3Server", "s3_storage_options"]
