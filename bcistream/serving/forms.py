"""Request bodies before BentoML or a route sees them: the media type, and multipart forms checked and
split without copying."""

from __future__ import annotations

import re

__all__ = ["check_form", "media_type_problem", "parse_form"]

_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'[\s;]name="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'[\s;]filename\*?=', re.IGNORECASE)
_HEADER_LINE = re.compile(rb"^[!#-'*+.0-9A-Z^-z|~-]+:")


Parts = dict[str, tuple[str, memoryview]]


def parse_form(body: bytes, content_type: bytes, file_fields: frozenset[str],
               required: frozenset[str] = frozenset()) -> tuple[str | None, Parts]:
    """Check a multipart body and split it: ``(problem or None, {field: (file name, bytes)})``.

    Refused: a part that is not one of ``file_fields``, one without a file name, a part header
    line that is not ``Name: value`` (e.g. a line break inside a file name), a malformed body, a
    body without any part, or one without a field of ``required``.
    """
    m = _BOUNDARY.search(content_type)
    if m is None:
        return "multipart/form-data without a boundary", {}
    delim = b"--" + m.group(1)
    pos = body.find(delim)
    parts: Parts = {}
    whole = memoryview(body)  # parts are views: an upload is never copied
    while pos >= 0:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return "malformed multipart body", {}
        head = body[pos:head_end]
        lines = [ln for ln in head.split(b"\r\n") if ln]
        if any(not _HEADER_LINE.match(ln) for ln in lines):
            return "malformed part header (a line break inside a file name?)", {}
        name = _NAME.search(head)
        field = name.group(1).decode("utf-8", "replace") if name else ""
        if field not in file_fields:
            return (f"unknown form field {field[:40]!r}; expected file upload(s) "
                    f"{', '.join(sorted(file_fields))}"), {}
        if not _FILENAME.search(head):
            return f"form field {field!r} must be a file upload (with a file name), not a text value", {}
        nxt = body.find(b"\r\n" + delim, head_end)
        if nxt < 0:
            return "malformed multipart body (no closing boundary)", {}
        fname = re.search(rb'filename="([^"]*)"', head)
        parts[field] = (fname.group(1).decode("utf-8", "replace") if fname else "", whole[head_end + 4:nxt])
        pos = nxt + 2
    if not parts:
        return f"no file uploaded; expected {', '.join(sorted(file_fields))}", {}
    missing = sorted(required - parts.keys())
    if missing:
        return f"missing file upload {', '.join(repr(f) for f in missing)}", {}
    return None, parts


def check_form(body: bytes, content_type: bytes, file_fields: frozenset[str],
               required: frozenset[str] = frozenset()) -> str | None:
    """Why a multipart body is refused, or None (see `parse_form`)."""
    return parse_form(body, content_type, file_fields, required)[0]


#: What to send instead, per media type, when a request has no Content-Type at all.
_SEND_HINT = {
    "multipart/form-data": "send a multipart/form-data upload (curl -F FIELD=@FILE)",
    "application/octet-stream": "send the .npy bytes with Content-Type: application/octet-stream",
}


def media_type_problem(path: str, expected: str, headers: dict[bytes, bytes]) -> str | None:
    """Why a POST to ``path`` (which takes ``expected``) has the wrong media type, or ``None``.

    A missing (or empty) Content-Type is taken as JSON on a JSON route, as it always was; on the
    other routes it is said to be missing, with what the route takes: reporting it as the JSON
    default made an upload without the header look like one sent as JSON.
    """
    raw = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1")
    if not raw:
        if expected == "application/json":
            return None
        hint = _SEND_HINT.get(expected, f"send Content-Type: {expected}")
        return f"{path} takes {expected}, but the request has no Content-Type header; {hint}"
    if raw.lower() != expected:
        return f"{path} takes {expected}, got Content-Type {raw!r}"
    return None
