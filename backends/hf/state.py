"""The Hub emulator's data: repositories as commit snapshots, buckets, LFS objects.

Everything lives in memory. File content is stored once per distinct content
(content-addressed by sha256); a commit is a full snapshot ``{path: FileEntry}``, so
any past revision stays readable and a branch is just a name pointing at a commit.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

GITATTRIBUTES = b"*.mp4 filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"


class HubError(Exception):
    """An error answered to the client: HTTP status, ``X-Error-Code`` and a message."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob with this content (what the Hub calls ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a snapshot: content is found in :attr:`HubState.blobs` by sha256."""

    path: str
    size: int
    sha256: str
    oid: str  # git blob oid of the content (regular) or of the LFS pointer (lfs)
    lfs: bool

    def to_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": 134}
        return entry


@dataclass(slots=True)
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, FileEntry]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "message": self.message,
            "date": self.date,
            "authors": [{"user": "robostore-emulator"}],
        }


@dataclass(slots=True)
class Repo:
    repo_type: str  # "model" | "dataset" | "space"
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """The commit a branch name or a commit id (full or 7+ characters) points at."""
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.commits:
            return self.commits[revision]
        if len(revision) >= 7:
            matches = [c for cid, c in self.commits.items() if cid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def history(self, revision: str) -> list[Commit]:
        """Commits reachable from ``revision``, newest first."""
        out: list[Commit] = []
        commit: Commit | None = self.resolve(revision)
        while commit is not None:
            out.append(commit)
            commit = self.commits[commit.parent] if commit.parent else None
        return out


@dataclass(slots=True)
class BucketFile:
    path: str
    size: int
    sha256: str
    mtime: str

    def to_json(self) -> dict[str, object]:
        # Real buckets are xet-backed; the sha256 stands in for the xet hash.
        return {
            "type": "file",
            "path": self.path,
            "size": self.size,
            "xetHash": self.sha256,
            "mtime": self.mtime,
            "uploadedAt": self.mtime,
        }


@dataclass(slots=True)
class Bucket:
    bucket_id: str
    created_at: str
    files: dict[str, BucketFile] = field(default_factory=dict)


class HubState:
    """All repositories, buckets and blobs of one emulator, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.blobs: dict[str, bytes] = {}  # sha256 -> content
        self.repos: dict[tuple[str, str], Repo] = {}
        self.buckets: dict[str, Bucket] = {}
        self.commit_requests = 0
        self._serial = 0

    # ---------------------------------------------------------------- blobs
    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.blobs.setdefault(sha, data)
        return sha

    def blob(self, sha256: str) -> bytes:
        return self.blobs[sha256]

    def file_entry(self, path: str, data: bytes, lfs: bool) -> FileEntry:
        sha = self.put_blob(data)
        if lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
            oid = git_blob_oid(pointer.encode())
        else:
            oid = git_blob_oid(data)
        return FileEntry(path, len(data), sha, oid, lfs)

    # ---------------------------------------------------------------- repos
    def _new_commit_id(self) -> str:
        self._serial += 1
        return hashlib.sha1(f"robostore-emulator-commit-{self._serial}-{now()}".encode()).hexdigest()

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}") from None

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> tuple[Repo, bool]:
        """Create a repo with an initial commit holding ``.gitattributes``; ``(repo, created)``."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return self.repos[(repo_type, repo_id)], False
            repo = Repo(repo_type, repo_id, private, now())
            entry = self.file_entry(".gitattributes", GITATTRIBUTES, lfs=False)
            commit = Commit(self._new_commit_id(), None, "initial commit", "", now(), {entry.path: entry})
            repo.commits[commit.id] = commit
            repo.branches["main"] = commit.id
            self.repos[(repo_type, repo_id)] = repo
            return repo, True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.repo(repo_type, repo_id)
            del self.repos[(repo_type, repo_id)]

    def commit(
        self,
        repo: Repo,
        branch: str,
        title: str,
        message: str,
        parent: str | None,
        additions: list[FileEntry],
        deletions: list[tuple[str, bool]],
    ) -> Commit:
        """Apply one commit atomically: deletions ``(path, is_folder)`` then additions."""
        with self.lock:
            self.commit_requests += 1
            if branch not in repo.branches:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch} (commits go to branches)")
            head = repo.commits[repo.branches[branch]]
            if parent is not None and parent != head.id:
                raise HubError(412, None, f"A commit has happened since {parent}; head is now {head.id}")
            files = dict(head.files)
            for path, is_folder in deletions:
                path = path.rstrip("/")
                if is_folder:
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, "EntryNotFound", f"A folder with this name doesn't exist: {path}")
                    for p in doomed:
                        del files[p]
                elif files.pop(path, None) is None:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
            for entry in additions:
                files[entry.path] = entry
            commit = Commit(self._new_commit_id(), head.id, title, message, now(), files)
            repo.commits[commit.id] = commit
            repo.branches[branch] = commit.id
            return commit

    # ---------------------------------------------------------------- buckets
    def bucket(self, bucket_id: str) -> Bucket:
        try:
            return self.buckets[bucket_id]
        except KeyError:
            raise HubError(404, "RepoNotFound", f"Bucket not found: {bucket_id}") from None

    def put_bucket_file(self, bucket_id: str, path: str, data: bytes) -> None:
        with self.lock:
            bucket = self.buckets.setdefault(bucket_id, Bucket(bucket_id, now()))
            bucket.files[path] = BucketFile(path, len(data), self.put_blob(data), now())

    def reset(self) -> None:
        with self.lock:
            self.blobs.clear()
            self.repos.clear()
            self.buckets.clear()
            self.commit_requests = 0
