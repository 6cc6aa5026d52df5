"""The viewer's web app: two pages, a JSON API, clips, images and dataset files.

Routes (all read-only):

- ``/`` and ``/episode/{n}``: the dataset and episode pages (static HTML + JS);
- ``/api/dataset``, ``/api/episodes?offset=&limit=&task=``, ``/api/episode/{n}`` (cameras,
  tasks; starts cutting the clips), ``/api/episode/{n}/data`` (plots), ``/api/problems``: JSON;
- ``/clip/{n}/{video_key}``: one camera of one episode as its own mp4 (Range requests);
- ``/image/{n}/{image_key}/{frame}``: one frame of an ``image`` feature (PNG/JPEG bytes);
- ``/files/{path}``: a file of the dataset by its dataset-relative path, Range requests
  answered with :meth:`Store.read_range`. Paths go through the Store's normaliser: one
  that could leave the dataset root is answered 400, a missing file 404.

Errors are the robostore hierarchy's, as JSON ``{"error": class name, "message": ...}``,
so a page shows the same typed error the command line prints.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from robostore.backends import open_store
from robostore.errors import NotFound, PathError, RobostoreError, SchemaError, StoreError
from robostore.meta import DatasetMeta
from robostore.store import Store, normalize_path
from robostore.torch.tabular import ImageBytes, TabularData
from robostore.view.clips import ClipCache
from robostore.view.payloads import (
    PAGE_SIZE,
    dataset_payload,
    episode_payload,
    episode_plots,
    episodes_page,
    load_episode,
)
from robostore.view.problems import BackgroundValidation
from robostore.view.ranges import range_response

STATIC = files("robostore.view") / "static"
_MEDIA_TYPES = {".mp4": "video/mp4", ".json": "application/json", ".parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class _Opened:
    meta: DatasetMeta
    clips: ClipCache
    validation: BackgroundValidation


class Viewer:
    """The dataset behind the app: opened on first use, and again until it opens.

    A dataset that cannot be opened does not stop the server: every request answers
    with the typed error, as ``robostore info`` would print it.
    """

    def __init__(self, store: Store, max_episodes: int = 8) -> None:
        self.store = store
        self.max_episodes = max_episodes
        self._opened: _Opened | None = None
        self._summary: dict[str, Any] | None = None
        self._images = ImageBytes(store)
        self._episodes: collections.OrderedDict[int, TabularData] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="robostore-view-clips")

    def _open(self) -> _Opened:
        with self._lock:
            if self._opened is None:
                meta = DatasetMeta.open(self.store)
                self._opened = _Opened(meta, ClipCache(meta), BackgroundValidation(meta))
            return self._opened

    @property
    def meta(self) -> DatasetMeta:
        return self._open().meta

    @property
    def clips(self) -> ClipCache:
        return self._open().clips

    @property
    def validation(self) -> BackgroundValidation:
        """``validate``'s run over the dataset, started when the dataset opens."""
        return self._open().validation

    def summary(self) -> dict[str, Any]:
        meta = self.meta
        if self._summary is None:
            self._summary = dataset_payload(meta)  # lists the files once, for the size
        return self._summary

    def problems(self) -> dict[str, Any]:
        return self.validation.status()

    def prefetch_clips(self, episode_index: int) -> None:
        """Start cutting an episode's clips in the background (while the page loads); a
        failure is raised again when the clip itself is requested."""
        for key in self.meta.video_keys:
            self._background.submit(self.clips.get, episode_index, key)

    def episode_data(self, episode_index: int) -> TabularData:
        """The tabular data of one episode, kept for the last few episodes viewed."""
        with self._lock:
            data = self._episodes.get(episode_index)
            if data is not None:
                self._episodes.move_to_end(episode_index)
                return data
        data = load_episode(self.meta, episode_index)
        with self._lock:
            self._episodes[episode_index] = data
            while len(self._episodes) > self.max_episodes:
                self._episodes.popitem(last=False)
        return data

    def image(self, episode_index: int, key: str, frame: int) -> bytes:
        meta = self.meta
        if key not in meta.image_keys:
            raise NotFound(f"{meta.url}: {key!r} is not an image feature (image keys: {meta.image_keys})")
        data = self.episode_data(episode_index)
        if not 0 <= frame < len(data.file_of):
            raise NotFound(f"{meta.url}: episode {episode_index} has no frame {frame} ({len(data.file_of)} frames)")
        return self._images.get(data.files[int(data.file_of[frame])], key, int(data.file_row[frame]))


def error_status(exc: RobostoreError) -> int:
    """The HTTP status of a robostore error."""
    if isinstance(exc, PathError):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StoreError):
        return 502
    return 422


def _error_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RobostoreError)
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=error_status(exc))


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SchemaError(f"query parameter {name}={raw!r} is not an integer") from None


def create_app(url: str | Store, storage_options: Mapping[str, Any] | None = None) -> Starlette:
    """The viewer app for the dataset at ``url``; serve it with any ASGI server."""
    viewer = Viewer(open_store(url, storage_options))

    def dataset_page(_request: Request) -> Response:
        return FileResponse(str(STATIC / "dataset.html"), media_type="text/html")

    def episode_page(request: Request) -> Response:
        # The clips are cut while the page and its scripts load; an error shows on the
        # page's first API call.
        with contextlib.suppress(RobostoreError):
            viewer.prefetch_clips(request.path_params["episode"])
        return FileResponse(str(STATIC / "episode.html"), media_type="text/html")

    def api_dataset(_request: Request) -> Response:
        return JSONResponse(viewer.summary())

    def api_episodes(request: Request) -> Response:
        page_ = episodes_page(
            viewer.meta,
            offset=_int_param(request, "offset", 0),
            limit=_int_param(request, "limit", PAGE_SIZE),
            task=request.query_params.get("task") or None,
        )
        return JSONResponse(page_)

    def api_episode(request: Request) -> Response:
        episode_index = request.path_params["episode"]
        payload = episode_payload(viewer.meta, episode_index)  # a typed error for an unknown episode
        viewer.prefetch_clips(episode_index)
        return JSONResponse(payload)

    def api_episode_data(request: Request) -> Response:
        episode_index = request.path_params["episode"]
        return JSONResponse(episode_plots(viewer.meta, viewer.episode_data(episode_index)))

    def api_problems(_request: Request) -> Response:
        return JSONResponse(viewer.problems())

    def clip(request: Request) -> Response:
        episode_index, key = request.path_params["episode"], request.path_params["key"]
        meta = viewer.meta
        if key not in meta.video_keys:
            raise NotFound(f"{meta.url}: {key!r} is not a video feature (video keys: {meta.video_keys})")
        data = viewer.clips.get(episode_index, key).data
        return range_response(request.headers.get("range"), len(data), lambda a, b: data[a:b], "video/mp4")

    def image(request: Request) -> Response:
        raw = viewer.image(request.path_params["episode"], request.path_params["key"], request.path_params["frame"])
        media = "image/png" if raw.startswith(b"\x89PNG") else "image/jpeg"
        return Response(raw, media_type=media)

    def dataset_file(request: Request) -> Response:
        path = normalize_path(request.path_params["path"])
        size = viewer.store.info(path).size
        media = next((m for ext, m in _MEDIA_TYPES.items() if path.endswith(ext)), "application/octet-stream")
        return range_response(
            request.headers.get("range"), size, lambda a, b: viewer.store.read_range(path, a, b), media
        )

    routes = [
        Route("/", dataset_page),
        Route("/favicon.ico", lambda _request: Response(status_code=204)),
        Route("/episode/{episode:int}", episode_page),
        Route("/api/dataset", api_dataset),
        Route("/api/episodes", api_episodes),
        Route("/api/episode/{episode:int}", api_episode),
        Route("/api/episode/{episode:int}/data", api_episode_data),
        Route("/api/problems", api_problems),
        Route("/clip/{episode:int}/{key}", clip),
        Route("/image/{episode:int}/{key}/{frame:int}", image),
        Route("/files/{path:path}", dataset_file),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={RobostoreError: _error_response})
    app.state.viewer = viewer
    return app


__all__ = ["Viewer", "create_app", "error_status"]
