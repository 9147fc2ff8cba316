"""Strict JSON: the one way JSON from outside is read (request bodies, catalogues, pairs).

Python's :func:`json.loads` accepts ``NaN``, ``Infinity`` and ``1e400`` (as ``inf``),
converts integers of any length (quadratic time; over 4,300 digits it raises a bare
ValueError) and recurses in C for every nesting level (a RecursionError deep down).
:func:`loads` refuses all of these up front with an :class:`InvalidJSON` whose
message is one line, so the edges answer with a 4xx or a one-line error, never a
traceback, and the code after them never sees a non-finite number or deep nesting.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from searchengine.errors import SearchEngineError

#: Nesting levels allowed (arrays and objects); the API's bodies use 2, catalogues a few.
MAX_DEPTH = 64
#: Characters allowed in one number (an id needs 19; Python's own limit is 4,300 digits).
MAX_NUMBER_CHARS = 100

# a JSON string, once its escapes are gone: its brackets do not nest. Two passes with no
# backtracking, so linear in the text (one pattern for strings with escapes in them is
# quadratic on an unterminated string of escaped quotes)
_ESCAPES = re.compile(r"\\.", re.DOTALL)
_STRINGS = re.compile(r'"[^"]*"')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_OPENERS, _CLOSERS = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)


class InvalidJSON(SearchEngineError, ValueError):
    """JSON text that does not parse, or parses past a limit; the message is one line."""


def loads(
    text: str | bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    max_number_chars: int = MAX_NUMBER_CHARS,
) -> Any:
    """Parse ``text`` (bytes must be UTF-8) as JSON, refusing what :mod:`json` lets through.

    :raises InvalidJSON: not UTF-8, over ``max_bytes``, nested deeper than ``max_depth``,
        ``NaN``/``Infinity`` or a number out of float range, a number longer than
        ``max_number_chars``, or not JSON at all.
    """
    if max_bytes is not None and len(text) > max_bytes:
        raise InvalidJSON(f"the JSON text is over the limit of {max_bytes:,} bytes")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"the JSON text is not UTF-8 (byte {exc.start})") from None
    check_depth(text, max_depth)

    def number(raw: str, kind: type) -> int | float:
        if len(raw) > max_number_chars:
            raise InvalidJSON(f"a number has {len(raw):,} characters; at most {max_number_chars} are allowed")
        value = kind(raw)
        if not math.isfinite(value):
            raise InvalidJSON(f"the number {raw} is out of range: JSON numbers here must be finite")
        return value

    def constant(name: str):
        raise InvalidJSON(f"{name} is not a JSON number: numbers must be finite")

    try:
        value = json.loads(
            text,
            parse_constant=constant,
            parse_float=lambda raw: number(raw, float),
            parse_int=lambda raw: number(raw, int),
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise InvalidJSON(f"not JSON: {exc.msg} ({where})") from None
    except RecursionError:  # only if the C stack is smaller than max_depth levels
        raise InvalidJSON(f"the JSON text is nested deeper than {max_depth} levels") from None
    if _SURROGATE_ESCAPE.search(text):
        try:  # an escaped half of a pair, alone, is no character: nothing could store or echo it
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidJSON("a string holds half a UTF-16 surrogate pair (\\udXXX) alone") from None
    return value


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse ``text`` if its arrays and objects nest deeper than ``max_depth``.

    Strings are blanked (brackets in them do not nest), then the depth is a running sum
    over the brackets, in numpy: no recursion, so no depth can exhaust the stack, and
    linear in C (a 20 MB body of brackets takes a fraction of a second). Text with fewer
    brackets than ``max_depth`` is not even scanned.

    :raises InvalidJSON: too deep.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return
    blanked = _STRINGS.sub('""', _ESCAPES.sub("", text))
    raw = np.frombuffer(blanked.encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.isin(raw, _OPENERS).astype(np.int32) - np.isin(raw, _CLOSERS).astype(np.int32)
    if steps.size and int(np.cumsum(steps).max()) > max_depth:
        raise InvalidJSON(f"the JSON text is nested deeper than {max_depth} levels")
