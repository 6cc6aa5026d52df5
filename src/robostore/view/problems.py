"""What ``robostore validate`` finds, sorted by episode, for the viewer's warning badges.

Validation reads every data file's index columns and every mp4's header, so it runs
once, in a background thread, while the pages already work.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from typing import Any

from robostore.checks import Problem
from robostore.errors import RobostoreError
from robostore.meta import DatasetMeta
from robostore.validate import validate

_EPISODE = re.compile(r"^episode (\d+)\b")


def problems_by_episode(meta: DatasetMeta, problems: list[Problem]) -> tuple[dict[int, list[str]], list[str]]:
    """``({episode: [messages]}, [dataset-wide messages])``.

    A problem is an episode's when its message starts with ``episode N`` or its file is
    the data file or an mp4 of that episode; the others concern the whole dataset.
    """
    users: dict[str, list[int]] = defaultdict(list)
    for ep in meta.episode_indices.tolist():
        try:
            users[meta.data_path(ep)].append(ep)
            for key in meta.video_keys:
                users[meta.video_span(ep, key).path].append(ep)
        except RobostoreError:
            continue  # bad file numbers: validate reports them (dataset-wide)
    by_episode: dict[int, list[str]] = defaultdict(list)
    dataset: list[str] = []
    for problem in problems:
        text = f"{problem.error}: {problem.path}: {problem.message}"
        named = _EPISODE.match(problem.message)
        if named:
            by_episode[int(named.group(1))].append(text)
        elif problem.path in users:
            for ep in users[problem.path]:
                by_episode[ep].append(text)
        else:
            dataset.append(text)
    return dict(by_episode), dataset


class BackgroundValidation:
    """Runs :func:`validate` on the dataset once, in a daemon thread."""

    def __init__(self, meta: DatasetMeta) -> None:
        self.meta = meta
        self._state: dict[str, Any] = {"state": "running", "episodes": {}, "dataset": []}
        self._thread = threading.Thread(target=self._run, name="robostore-view-validate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            report = validate(self.meta.store)
            episodes, dataset = problems_by_episode(self.meta, report.problems)
            state = {"state": "done", "episodes": episodes, "dataset": dataset, "problems": len(report.problems)}
        except Exception as exc:  # noqa: BLE001 - any failure is shown; the pages must not wait forever
            state = {"state": "failed", "episodes": {}, "dataset": [f"{type(exc).__name__}: {exc}"]}
        self._state = state

    def status(self) -> dict[str, Any]:
        """``state`` (running, done, failed), ``episodes`` ({index: [messages]}), ``dataset``."""
        return self._state

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
