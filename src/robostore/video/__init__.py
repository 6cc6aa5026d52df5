"""Video encoding and decoding (PyAV) for LeRobot v3.0 camera features."""

from robostore.video.decode import VideoReader, decode_image

__all__ = ["VideoReader", "decode_image"]
