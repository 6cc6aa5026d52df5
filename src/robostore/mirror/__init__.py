"""Copy a dataset between any two backends: incremental, verified, resumable, subsettable.

Modules, one job each: :mod:`~robostore.mirror.plan` (what to write, from listings),
:mod:`~robostore.mirror.manifest` (what was written before, kept at the destination),
:mod:`~robostore.mirror.copy` (bounded-memory atomic transfers),
:mod:`~robostore.mirror.subset` (a smaller dataset of chosen episodes),
:mod:`~robostore.mirror.remux` (cutting mp4s by stream copy),
:mod:`~robostore.mirror.report` (the result), :mod:`~robostore.mirror.core` (the run).
"""

from robostore.mirror.core import mirror
from robostore.mirror.manifest import MANIFEST_PATH
from robostore.mirror.report import MirrorReport

__all__ = ["MANIFEST_PATH", "MirrorReport", "mirror"]
