"""HTTP Range requests (RFC 9110 single byte ranges) answered from any byte source.

The viewer serves dataset files and per-episode clips this way so a ``<video>``
element can seek without downloading everything first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.responses import Response

#: Longest answer to an open-ended range (``bytes=N-``): a browser asks for the rest of
#: the file and reads what it needs; answering in parts keeps each backend read small.
OPEN_RANGE_LIMIT = 1 << 20

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiableError(ValueError):
    """The Range header names no byte of the resource (HTTP 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` bytes a ``Range`` header asks for, or None for the whole resource.

    Open-ended ranges are cut to :data:`OPEN_RANGE_LIMIT` bytes (the client asks again
    for the rest). Several ranges in one header and malformed headers raise
    :class:`RangeNotSatisfiableError`.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiableError(f"unsupported Range header {header!r}: one 'bytes=a-b' range only")
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else min(size, start + OPEN_RANGE_LIMIT)
    if start >= size or end <= start:
        raise RangeNotSatisfiableError(f"range {header!r} is outside the {size} bytes of the resource")
    return start, end


def range_response(header: str | None, size: int, read: Callable[[int, int], bytes], media_type: str) -> Response:
    """Answer a GET for a resource of ``size`` bytes whose bytes ``[a, b)`` are ``read(a, b)``.

    200 with the whole resource without a Range header, 206 with the asked part, 416
    when the range names no byte of it.
    """
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    try:
        span = parse_range(header, size)
    except RangeNotSatisfiableError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is None:
        return Response(read(0, size) if size else b"", media_type=media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(read(start, end), status_code=206, media_type=media_type, headers=headers)
