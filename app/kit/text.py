"""Text the databases can store: one rule for every input, applied at the edge.

PostgreSQL's text types cannot hold NUL (U+0000), and neither backend's driver can encode a
lone UTF-16 surrogate (U+D800-U+DFFF, which JSON's ``\\ud800`` escapes produce); either made a
500 after validation had passed, on PostgreSQL and not on SQLite, and left no trace of the
request. :func:`check_storable` refuses them with a 400 naming where they were; the request
guard (:mod:`app.kit.http`) runs it on every path, query string and JSON body, and endpoints
that parse other bodies (multipart, ``/v1/listen``'s query) run it on their text fields:

    check_storable("tag", "a\\x00b")   # BadRequest: tag contains a NUL character ...
"""

from __future__ import annotations

import re

from app.kit.errors import BadRequest

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In JSON text: a \u0000 escape, or a surrogate escape that is not part of a pair. The
# preceding backslashes must be odd in number, or the backslash is itself escaped.
_JSON_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")
_HIGH = range(0xD800, 0xDC00)
_LOW = range(0xDC00, 0xE000)


class UnstorableText(BadRequest):
    """A NUL character or a lone surrogate in text the service would store."""


def unstorable_reason(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    return "a NUL character" if match.group() == "\x00" else "an unpaired UTF-16 surrogate"


def check_storable(where: str, text: str) -> str:
    """``text`` itself, or :class:`UnstorableText` naming ``where``."""
    reason = unstorable_reason(text)
    if reason is not None:
        raise UnstorableText(f"{where} contains {reason}, which cannot be stored.")
    return text


def json_unstorable_reason(body: bytes) -> str | None:
    """Why a JSON document's strings could not be stored, read from its escapes (no parse).

    A raw NUL byte or raw surrogate cannot appear in valid JSON (the parser refuses them);
    only their ``\\u`` escapes need looking for.
    """
    if b"\\u" not in body:
        return None
    escapes = list(_JSON_ESCAPE.finditer(body))
    for index, match in enumerate(escapes):
        code = int(match.group(1), 16)
        if code == 0:
            return "a NUL character"
        if code in _HIGH:
            follower = escapes[index + 1] if index + 1 < len(escapes) else None
            if (
                follower is None
                or follower.start() != match.end()
                or int(follower.group(1), 16) not in _LOW
            ):
                return "an unpaired UTF-16 surrogate"
        elif code in _LOW:
            leader = escapes[index - 1] if index > 0 else None
            if (
                leader is None
                or leader.end() != match.start()
                or int(leader.group(1), 16) not in _HIGH
            ):
                return "an unpaired UTF-16 surrogate"
    return None


def ascii_number(text: str, *, max_digits: int = 18) -> int | None:
    """The number ``text`` spells in ASCII digits (at most ``max_digits`` of them), else None.

    ``str.isdigit`` is true for ``²`` and other digits ``int`` cannot read (a 500), and
    ``int`` reads ``٣`` (Arabic-Indic three): a version, a size or a count in a request is
    ASCII or it is no number. ``max_digits`` keeps it within a 64-bit column.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None
