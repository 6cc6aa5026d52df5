"""A protocol-level emulator of the Hugging Face Hub HTTP API, for tests.

The unmodified ``huggingface_hub`` client (``HfApi``, ``HfFileSystem``) talks to it via
``endpoint=`` or ``HF_ENDPOINT``. It serves what robostore and the client's repo and
file APIs need: repo creation and info, branches, tree listings with paging, paths-info,
resolve (with ``Range``), preupload, NDJSON commits (inline base64 files and LFS files),
the legacy LFS batch upload, commit history, and read-only buckets. Errors carry the
``X-Error-Code`` header the client maps to its typed exceptions. See README.md for what
it does not emulate.

Use in process::

    with HubEmulator() as hub:
        HfApi(endpoint=hub.url).create_repo("org/data", repo_type="dataset")

or as a server: ``python -m backends.hf``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from backends.hf.state import FileEntry, HubError, HubState, Repo

log = logging.getLogger(__name__)

#: Entries per page of a tree listing (the Hub's: 1000, or 50 with ``expand``).
TREE_PAGE = 1000
TREE_PAGE_EXPANDED = 50
COMMITS_PAGE = 50

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class HubEmulator:
    """The emulator's HTTP server on 127.0.0.1, running in a background thread.

    Args:
        port: TCP port (0: any free port).
        token: when set, every request must carry ``Authorization: Bearer <token>``.
        lfs_threshold: files of at least this many bytes are uploaded through LFS
            (``uploadMode: "lfs"``); ``None`` keeps every file inline. With ``hf_xet``
            installed the client sends LFS files to xet storage, which this emulator does
            not have: only lower the threshold together with ``HF_HUB_DISABLE_XET=1``.
    """

    def __init__(self, port: int = 0, token: str | None = None, lfs_threshold: int | None = None) -> None:
        self.state = HubState()
        self.token = token
        self.lfs_threshold = lfs_threshold
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.emulator = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubEmulator:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "robostore-hub-emulator"

    # ------------------------------------------------------------------ plumbing
    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # the client's delayed ACK add 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def hub(self) -> HubEmulator:
        return self.server.emulator  # type: ignore[attr-defined]

    @property
    def state(self) -> HubState:
        return self.hub.state

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        self._body: bytes | None = None
        try:
            if segments[:1] != ["_emulator"]:
                self._check_auth()
            handler = self._route(method, segments)
            if handler is None:
                raise HubError(404, None, f"no such endpoint: {method} {split.path}")
            handler()
        except HubError as exc:
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug here must reach the client as a 500, not a hang
            log.exception("emulator error on %s %s", method, self.path)
            self._error(HubError(500, None, f"emulator error: {type(exc).__name__}: {exc}"))

    def _check_auth(self) -> None:
        if self.hub.token is None:
            return
        if self.headers.get("Authorization", "") != f"Bearer {self.hub.token}":
            self.body()  # drain, so the connection stays usable
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def body(self) -> bytes:
        if self._body is None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self._body = b"".join(chunks)
            else:
                self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._body

    def json_body(self) -> Any:
        try:
            return json.loads(self.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, None, f"invalid JSON body: {exc}") from exc

    def base_url(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    def send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.body()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, exc: HubError) -> None:
        headers = {"X-Error-Message": exc.message.replace("\n", " ")}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        self.send_json({"error": exc.message}, status=exc.status, headers=headers)

    # ------------------------------------------------------------------ routing
    def _route(self, method: str, s: list[str]) -> Any:
        if s[:1] == ["_emulator"]:
            return self._route_admin(method, s[1:])
        if s[:1] == ["api"]:
            return self._route_api(method, s[1:])
        if s[:1] == ["buckets"] and len(s) >= 4 and s[3] == "resolve" and method in ("GET", "HEAD"):
            bucket = self.state.bucket(f"{s[1]}/{s[2]}")
            path = "/".join(s[4:])
            if path not in bucket.files:
                raise HubError(404, "EntryNotFound", f"{path} does not exist in bucket {bucket.bucket_id}")
            entry = bucket.files[path]
            return lambda: self._serve_bytes(self.state.blob(entry.sha256), {"ETag": f'"{entry.sha256}"'})
        repo_type = "model"
        if s and s[0] in ("datasets", "spaces"):
            repo_type, s = _TYPES[s[0]], s[1:]
        if len(s) >= 4 and s[2] == "resolve" and method in ("GET", "HEAD"):
            return lambda: self.resolve(repo_type, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]))
        if len(s) >= 2 and s[1].endswith(".git") and s[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            return lambda: self.lfs_batch(repo_type, f"{s[0]}/{s[1][:-4]}")
        return None

    def _route_admin(self, method: str, s: list[str]) -> Any:
        if s == ["reset"] and method == "POST":
            return lambda: (self.state.reset(), self.send_json({"ok": True}))
        if s == ["stats"] and method == "GET":
            return lambda: self.send_json({"commit_requests": self.state.commit_requests})
        if s[:1] == ["lfs"] and len(s) == 2 and method == "PUT":
            return lambda: self.lfs_put(s[1])
        if s[:1] == ["buckets"] and len(s) >= 4 and method == "PUT":
            return lambda: (
                self.state.put_bucket_file(f"{s[1]}/{s[2]}", "/".join(s[3:]), self.body()),
                self.send_json({"ok": True}),
            )
        return None

    def _route_api(self, method: str, s: list[str]) -> Any:
        if s == ["repos", "create"] and method == "POST":
            return self.create_repo
        if s == ["repos", "delete"] and method == "DELETE":
            return self.delete_repo
        if s[:1] == ["buckets"] and len(s) >= 3 and method == "GET":
            bucket_id = f"{s[1]}/{s[2]}"
            if len(s) == 3:
                return lambda: self.bucket_info(bucket_id)
            if s[3] == "tree":
                return lambda: self.bucket_tree(bucket_id, "/".join(s[4:]))
            return None
        if len(s) < 3 or s[0] not in _TYPES:
            return None
        repo_type, repo_id, rest = _TYPES[s[0]], f"{s[1]}/{s[2]}", s[3:]
        if not rest and method == "GET":
            return lambda: self.repo_info(repo_type, repo_id, "main")
        if len(rest) >= 2 and rest[0] == "revision" and method == "GET":
            return lambda: self.repo_info(repo_type, repo_id, "/".join(rest[1:]))
        if len(rest) >= 2 and rest[0] == "tree" and method == "GET":
            return lambda: self.tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if len(rest) >= 2 and rest[0] == "paths-info" and method == "POST":
            return lambda: self.paths_info(repo_type, repo_id, "/".join(rest[1:]))
        if len(rest) >= 2 and rest[0] == "commits" and method == "GET":
            return lambda: self.commits(repo_type, repo_id, "/".join(rest[1:]))
        if len(rest) >= 2 and rest[0] == "preupload" and method == "POST":
            return lambda: self.preupload(repo_type, repo_id, "/".join(rest[1:]))
        if len(rest) >= 2 and rest[0] == "commit" and method == "POST":
            return lambda: self.commit(repo_type, repo_id, "/".join(rest[1:]))
        if len(rest) >= 2 and rest[0] == "branch" and method == "POST":
            return lambda: self.create_branch(repo_type, repo_id, "/".join(rest[1:]))
        if rest == ["refs"] and method == "GET":
            return lambda: self.refs(repo_type, repo_id)
        return None

    # ------------------------------------------------------------------ repos
    def repo_url(self, repo: Repo) -> str:
        return f"{self.base_url()}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def create_repo(self) -> None:
        payload = self.json_body()
        name, org = payload.get("name"), payload.get("organization")
        if not name:
            raise HubError(400, None, "missing repo name")
        repo_id = f"{org}/{name}" if org else f"user/{name}"
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, None, f"invalid repo type {repo_type!r}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo, created = self.state.create_repo(repo_type, repo_id, private)
        body = {"url": self.repo_url(repo), "name": repo_id, "id": repo_id}
        if not created:
            self.send_json({**body, "error": "You already created this repo"}, status=409)
        else:
            self.send_json(body)

    def delete_repo(self) -> None:
        payload = self.json_body()
        org, name = payload.get("organization"), payload.get("name")
        self.state.delete_repo(payload.get("type") or "model", f"{org}/{name}" if org else f"user/{name}")
        self.send_json({})

    def repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.state.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        metadata = "files_metadata" in self.query or "blobs" in self.query
        siblings = []
        for entry in sorted(commit.files.values(), key=lambda e: e.path):
            sibling: dict[str, Any] = {"rfilename": entry.path}
            if metadata:
                sibling.update({"size": entry.size, "blobId": entry.oid})
                if entry.lfs:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": 134}
            siblings.append(sibling)
        self.send_json(
            {
                "id": repo_id,
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "author": repo_id.split("/")[0],
                "sha": commit.id,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "createdAt": repo.created_at,
                "lastModified": commit.date,
                "tags": [],
                "siblings": siblings,
            }
        )

    def create_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        repo = self.state.repo(repo_type, repo_id)
        start = self.json_body().get("startingPoint") or "main"
        with self.state.lock:
            if branch in repo.branches:
                raise HubError(409, None, f"Reference already exists: {branch}")
            repo.branches[branch] = repo.resolve(start).id
        self.send_json({})

    def refs(self, repo_type: str, repo_id: str) -> None:
        repo = self.state.repo(repo_type, repo_id)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()]
        self.send_json({"branches": branches, "tags": [], "converts": []})

    # ------------------------------------------------------------------ listings
    def tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        commit = self.state.repo(repo_type, repo_id).resolve(revision)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        path = path.strip("/")
        if path in commit.files:
            raise HubError(404, "EntryNotFound", f"{path} is a file, not a folder")
        entries = _tree_entries(commit.files, path, recursive)
        if path and not entries:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
        if expand:
            last = {"id": commit.id, "title": commit.title, "date": commit.date}
            entries = [{**e, "lastCommit": last} for e in entries]
        self._send_page(entries, TREE_PAGE_EXPANDED if expand else TREE_PAGE)

    def _send_page(self, entries: list[Any], page_size: int) -> None:
        """Send one page of ``entries`` with a GitHub-style ``Link`` to the next one."""
        try:
            start = int(self.query.get("cursor", ["0"])[0])
        except ValueError as exc:
            raise HubError(400, None, "invalid cursor") from exc
        end = start + page_size
        headers = {}
        if end < len(entries):
            query = {k: v[0] for k, v in self.query.items()}
            query["cursor"] = str(end)
            link = f"{self.base_url()}{urlsplit(self.path).path}?{urlencode(query)}"
            headers["Link"] = f'<{link}>; rel="next"'
        self.send_json(entries[start:end], headers=headers)

    def paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        commit = self.state.repo(repo_type, repo_id).resolve(revision)
        form = parse_qs(self.body().decode())
        if not form and self.headers.get("Content-Type", "").startswith("application/json"):
            form = {"paths": self.json_body().get("paths", [])}
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].to_json())
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append({"type": "directory", "oid": _tree_oid(commit.files, path), "path": path})
        self.send_json(out)

    def commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        history = self.state.repo(repo_type, repo_id).history(revision)
        self._send_page([c.to_json() for c in history], COMMITS_PAGE)

    # ------------------------------------------------------------------ downloads
    def resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        commit = self.state.repo(repo_type, repo_id).resolve(revision)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist at revision {revision}")
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.sha256 if entry.lfs else entry.oid}"'}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        self._serve_bytes(self.state.blob(entry.sha256), headers)

    def _serve_bytes(self, data: bytes, headers: dict[str, str]) -> None:
        headers = {**headers, "Accept-Ranges": "bytes"}
        spec = self.headers.get("Range")
        if not spec:
            self.send(200, data, "application/octet-stream", headers)
            return
        match = _RANGE.match(spec.strip())
        if not match or match.groups() == ("", ""):
            raise HubError(416, None, f"unsupported range {spec!r}")
        first, last = match.groups()
        size = len(data)
        if first == "":  # suffix: the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start >= size or end < start:
            self.send(416, b"", "application/octet-stream", {**headers, "Content-Range": f"bytes */{size}"})
            return
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send(206, data[start : end + 1], "application/octet-stream", headers)

    # ------------------------------------------------------------------ uploads
    def preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        commit = self.state.repo(repo_type, repo_id).resolve(revision)
        threshold = self.hub.lfs_threshold
        files = []
        for item in self.json_body().get("files", []):
            path, size = item["path"], int(item.get("size", 0))
            existing = commit.files.get(path)
            lfs = threshold is not None and size >= threshold
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.oid if existing and not existing.lfs else None,
                }
            )
        self.send_json({"files": files})

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.state.repo(repo_type, repo_id)
        if self.query.get("create_pr"):
            raise HubError(400, None, "the emulator does not support pull requests")
        header: dict[str, Any] = {}
        additions: list[FileEntry] = []
        deletions: list[tuple[str, bool]] = []
        for line in self.body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, None, f"unsupported encoding {value.get('encoding')!r}")
                additions.append(self.state.file_entry(value["path"], base64.b64decode(value["content"]), lfs=False))
            elif key == "lfsFile":
                oid = value["oid"]
                if oid not in self.state.blobs:
                    raise HubError(400, None, f"LFS object {oid} for {value['path']} was never uploaded")
                additions.append(self.state.file_entry(value["path"], self.state.blob(oid), lfs=True))
            elif key in ("deletedFile", "deletedFolder"):
                deletions.append((value["path"], key == "deletedFolder"))
            else:
                raise HubError(400, None, f"unsupported commit operation {key!r}")
        summary = header.get("summary") or "Upload files"
        commit = self.state.commit(
            repo, revision, summary, header.get("description") or "", header.get("parentCommit"), additions, deletions
        )
        self.send_json(
            {
                "success": True,
                "commitOid": commit.id,
                "commitUrl": f"{self.repo_url(repo)}/commit/{commit.id}",
                "pullRequestUrl": None,
                "commitMessage": summary,
            }
        )

    def lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self.state.repo(repo_type, repo_id)
        payload = self.json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, None, "the emulator's LFS endpoint only takes uploads")
        objects = []
        for obj in payload.get("objects", []):
            out: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.blobs:
                out["actions"] = {"upload": {"href": f"{self.base_url()}/_emulator/lfs/{quote(obj['oid'])}"}}
            objects.append(out)
        self.send(
            200,
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def lfs_put(self, oid: str) -> None:
        data = self.body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, None, f"uploaded content does not match sha256 {oid}")
        self.state.put_blob(data)
        self.send(200)

    # ------------------------------------------------------------------ buckets
    def bucket_info(self, bucket_id: str) -> None:
        bucket = self.state.bucket(bucket_id)
        self.send_json(
            {
                "id": bucket_id,
                "private": False,
                "createdAt": bucket.created_at,
                "size": sum(f.size for f in bucket.files.values()),
                "totalFiles": len(bucket.files),
            }
        )

    def bucket_tree(self, bucket_id: str, prefix: str) -> None:
        bucket = self.state.bucket(bucket_id)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        # Like the Hub, a prefix is matched lexically ("logs" also matches "logs_old/...").
        matching = sorted(p for p in bucket.files if p.startswith(prefix))
        entries: list[dict[str, Any]] = []
        if recursive:
            entries = [bucket.files[p].to_json() for p in matching]
        else:
            base = prefix.rstrip("/") + "/" if prefix else ""
            folders: dict[str, str] = {}
            for p in matching:
                if p == prefix or not p.startswith(base):
                    entries.append(bucket.files[p].to_json())
                    continue
                head, sep, _ = p[len(base) :].partition("/")
                if sep:
                    folders.setdefault(base + head, bucket.files[p].mtime)
                else:
                    entries.append(bucket.files[p].to_json())
            entries += [{"type": "directory", "path": f, "uploadedAt": t} for f, t in sorted(folders.items())]
        self._send_page(entries, TREE_PAGE)


def _tree_entries(files: dict[str, FileEntry], path: str, recursive: bool) -> list[dict[str, Any]]:
    """Folders first, then files, each sorted: the Hub's order for one tree listing."""
    prefix = f"{path}/" if path else ""
    folders: set[str] = set()
    found: list[FileEntry] = []
    for p in sorted(files):
        if not p.startswith(prefix):
            continue
        parts = p[len(prefix) :].split("/")
        if recursive:
            folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
            found.append(files[p])
        elif len(parts) > 1:
            folders.add(prefix + parts[0])
        else:
            found.append(files[p])
    out = [{"type": "directory", "oid": _tree_oid(files, f), "path": f} for f in sorted(folders)]
    return out + [f.to_json() for f in found]


def _tree_oid(files: dict[str, FileEntry], folder: str) -> str:
    """A stand-in for a git tree id: changes whenever anything below ``folder`` does."""
    digest = hashlib.sha1()
    for p in sorted(files):
        if p.startswith(folder + "/"):
            digest.update(f"{p}\0{files[p].oid}\n".encode())
    return digest.hexdigest()
