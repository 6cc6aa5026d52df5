"""Dataset fingerprints: which exact bytes produced the cached frames.

A fingerprint hashes ``meta/info.json`` (its bytes), the content tokens of the episodes
table files (they place episodes in the videos) and of every mp4 the episodes table
names (ETag, md5, git oid, or size + mtime + inode on local disk). Rewriting a video,
appending an episode or re-encoding anything gives a new fingerprint, hence a new,
empty set of arrays: a changed dataset never serves stale frames.
"""

from __future__ import annotations

import hashlib
import logging

from robostore.cache.layout import FORMAT_VERSION
from robostore.layout import EPISODES_DIR, INFO_PATH, VIDEOS_DIR
from robostore.meta import DatasetMeta
from robostore.store import content_hash

log = logging.getLogger(__name__)


def dataset_fingerprint(meta: DatasetMeta) -> str:
    """A 32-hex-digit digest of the bytes that decide a dataset's decoded frames.

    Costs one read of info.json and two listings (``meta/episodes``, ``videos``).
    """
    store = meta.store
    digest = hashlib.sha256(f"robostore-frame-cache/{FORMAT_VERSION}\0".encode())
    digest.update(store.read(INFO_PATH))
    listed = {f.path: f for f in store.list_info(EPISODES_DIR)}
    if meta.video_keys:
        listed.update({f.path: f for f in store.list_info(VIDEOS_DIR)})
    wanted = sorted(set(meta.episode_files) | set(meta.video_files()))
    for path in wanted:
        found = listed.get(path)
        if found is None:
            token = "<missing>"  # decoding its frames will fail; the other files still count
        elif found.token is None:
            log.info("%s has no content token on this backend; hashing its bytes", store.describe(path))
            token = content_hash(store.read(path))
        else:
            token = f"{found.size}:{found.token}"
        digest.update(f"{path}\0{token}\0".encode())
    return digest.hexdigest()[:32]
