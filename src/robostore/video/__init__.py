"""Video encoding and decoding (PyAV) for LeRobot v3.0 camera features.

* :class:`VideoReader` / :func:`decode_image`: reading frames (``decode.py``).
* :class:`EpisodeEncoder`, :class:`Segment`, :func:`append_segment`: writing
  episodes while recording (``encode.py``), configured by :class:`VideoOptions`.
"""

from robostore.video.decode import VideoReader, decode_image
from robostore.video.encode import (
    EpisodeEncoder,
    Segment,
    append_segment,
    concat_segments,
    file_size,
    mp4_header_size,
)
from robostore.video.options import VideoOptions

__all__ = [
    "EpisodeEncoder",
    "Segment",
    "VideoOptions",
    "VideoReader",
    "append_segment",
    "concat_segments",
    "decode_image",
    "file_size",
    "mp4_header_size",
]
