"""The Hugging Face Hub on loopback: a protocol-level emulator (see README.md)."""

from backends.hf.emulator import HubEmulator
from backends.hf.server import HfServer, hf_storage_options

__all__ = ["HfServer", "HubEmulator", "hf_storage_options"]
