"""What the driver must know about a statement before sending it, and parameter adaptation.

The member runs the SQL; the driver only needs two facts, decided exactly as
:mod:`sqlite3` (Python 3.11) decides them so that programs behave the same:

* is the statement only BEGIN / COMMIT / END / ROLLBACK? Those become
  protocol messages, because the member refuses transaction SQL in Execute.
  ``ROLLBACK TO savepoint`` is not a transaction verb and goes through as SQL.
* does it start with INSERT / UPDATE / DELETE / REPLACE (after whitespace and
  comments)? Then legacy transaction control opens a transaction before it.

Parameters are converted to wire values with sqlite3's rules: adapters
registered with ``sqlite3.register_adapter`` and ``__conform__`` are honoured,
bool -> int, bytearray/memoryview -> bytes, date/datetime -> ISO text
(sqlite3's default adapters), ints outside 64 bits -> OverflowError, anything
else -> ProgrammingError.
"""

from __future__ import annotations

import datetime
import re
import sqlite3
from collections.abc import Mapping, Sequence

from litemirror import errors
from litemirror.protocol import messages as m

_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.S)
_TXN_SQL = re.compile(
    r"(?:(?P<begin>BEGIN)(?:\s+(?:DEFERRED|IMMEDIATE|EXCLUSIVE))?"
    r"|(?P<commit>COMMIT|END)|(?P<rollback>ROLLBACK))"
    r"(?:\s+TRANSACTION(?:\s+\w+)?)?\s*;?\s*",
    re.I,
)
_DML = ("insert", "update", "delete", "replace")
_MAX_INT = 2**63 - 1


def skip_leading(sql: str) -> int:
    """Offset of the first token after whitespace and comments."""
    match = _LEADING.match(sql)
    return match.end() if match else 0


def transaction_verb(sql: str) -> str | None:
    """``'begin'``, ``'commit'`` or ``'rollback'`` if ``sql`` is only that statement."""
    match = _TXN_SQL.fullmatch(sql, skip_leading(sql))
    return match.lastgroup if match else None


def is_dml(sql: str) -> bool:
    """True for INSERT/UPDATE/DELETE/REPLACE, tested as sqlite3 3.11 does (a prefix)."""
    start = skip_leading(sql)
    return sql[start : start + 7].lower().startswith(_DML)


def adapt_value(value: object, index: object) -> m.Value:
    """One parameter as a wire value; ``index`` names it in the error message.

    As in :mod:`sqlite3`: an adapter registered with ``sqlite3.register_adapter``
    for the value's exact type comes first, then the SQLite types, then the
    value's ``__conform__(sqlite3.PrepareProtocol)``.
    """
    adapter = sqlite3.adapters.get((type(value), sqlite3.PrepareProtocol))
    if adapter is not None:
        return _basic(adapter(value), index)
    basic = _basic(value, index, strict=False)
    if basic is not _NOT_BASIC:
        return basic
    conform = getattr(value, "__conform__", None)
    if conform is not None:
        adapted = conform(sqlite3.PrepareProtocol)
        if adapted is not None:
            return _basic(adapted, index)
    # The adapters sqlite3 registers by default (deprecated there, kept for parity).
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise _unsupported(value, index)


_NOT_BASIC = object()


def _basic(value: object, index: object, *, strict: bool = True) -> m.Value:
    """``value`` as a wire value if it is one of SQLite's types; else raise (or _NOT_BASIC)."""
    if value is None or isinstance(value, str | float | bytes):
        return value
    if isinstance(value, int):  # bool included: SQLite stores True as 1
        if not -_MAX_INT - 1 <= value <= _MAX_INT:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return int(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if strict:
        raise _unsupported(value, index)
    return _NOT_BASIC


def _unsupported(value: object, index: object) -> errors.ProgrammingError:
    return errors.ProgrammingError(
        f"Error binding parameter {index}: type '{type(value).__name__}' is not supported"
    )


def adapt_params(params: object) -> m.Params:
    """A qmark sequence as a list, a named mapping as a dict, None as None."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {str(k): adapt_value(v, f":{k}") for k, v in params.items()}
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        return [adapt_value(v, i) for i, v in enumerate(params, 1)]
    raise errors.ProgrammingError(
        f"parameters are of unsupported type {type(params).__name__}; "
        "give a list or tuple (qmark) or a dict (named)"
    )
