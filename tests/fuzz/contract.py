"""What every fuzz target shares: the finding, and the checks made on what a parser returned."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any


class Finding(Exception):
    """A parser broke its contract on this input."""

    def __init__(self, what: str, signature: str) -> None:
        super().__init__(what)
        self.what = what
        #: Short and stable: the same bug found twice has the same signature.
        self.signature = signature


def _unexpected(exc: BaseException) -> Finding:
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in tb if "litemirror" in f.filename] or tb
    where = f"{ours[-1].filename.rsplit('/', 2)[-1]}:{ours[-1].lineno}" if ours else "?"
    detail = "".join(traceback.format_exception(exc, limit=-8))
    return Finding(
        f"undocumented {type(exc).__name__} at {where}\n{detail}", f"{type(exc).__name__}@{where}"
    )


def _roundtrip(value: Any, decode: Callable[[bytes], Any], encode_: Callable[[Any], bytes]) -> None:
    first = encode_(value)
    try:
        again = encode_(decode(first))
    except Exception as exc:
        raise Finding(
            f"{type(value).__name__} decoded from the input does not decode after re-encoding: "
            f"{exc!r}",
            f"roundtrip-decode:{type(value).__name__}",
        ) from exc
    if again != first:
        raise Finding(
            f"{type(value).__name__} changes on a re-encode round trip", "roundtrip-differs"
        )


def _shape(exc: object) -> str:
    """The message without numbers, cut short: the kind of refusal, not the instance."""
    text = "".join("#" if c.isdigit() else c for c in str(exc))
    return text[:48]


#: From the first quote to the last: a quoted value may itself hold quotes.
_QUOTED = re.compile(r"'.*'|\".*\"", re.S)


def _kind_of(message: str) -> str:
    """The shape of a refusal with quoted values left out: the kind, not the instance."""
    return _shape(_QUOTED.sub("Q", message))
