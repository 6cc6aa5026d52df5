"""Recording episodes into LeRobot v3.0 datasets on any backend.

Modules: ``frames`` (checking frames against the schema), ``episode`` (the episode
being recorded), ``files`` (staged data/video/episodes files with rollover),
``writer`` (the background episode writer), ``staging`` (staging folder and the
background publisher), ``lease`` (one writer per dataset), ``repair`` (cleaning up
after a crash), ``recorder`` (the public :class:`Recorder`).
"""

from robostore.record.recorder import Recorder
from robostore.video import VideoOptions

__all__ = ["Recorder", "VideoOptions"]
