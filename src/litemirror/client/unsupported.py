"""The parts of :class:`sqlite3.Connection` that litemirror cannot offer, and why.

Each is a method that raises :class:`~litemirror.errors.NotSupportedError`
with the reason and what to do instead, so a program moved from
:mod:`sqlite3` learns why at the call, not from an ``AttributeError``. Most
would have to run Python code inside SQLite, and the SQL runs in the
member's SQLite, in another process (often on another host).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from litemirror import errors

#: Why a Python callback cannot be installed: it would have to run inside the member.
_ON_MEMBER = "the SQL runs in the member's SQLite, not in this process"


def _not_supported(name: str, why: str) -> Callable[..., NoReturn]:
    def method(self: object, *args: object, **kwargs: object) -> NoReturn:
        raise errors.NotSupportedError(f"{name}() is not supported by litemirror: {why}")

    method.__name__ = name
    method.__doc__ = f"Raises NotSupportedError: {why}."
    return method


class NotOffered:
    """sqlite3's Connection methods that raise NotSupportedError here (a mixin)."""

    __slots__ = ()

    create_function = _not_supported(
        "create_function",
        f"{_ON_MEMBER}, so it cannot call a Python function; use SQLite's built-in "
        "functions, or compute the value in Python before or after the statement",
    )
    create_aggregate = _not_supported(
        "create_aggregate",
        f"{_ON_MEMBER}, so it cannot call a Python aggregate; use SQLite's built-in "
        "aggregates, or aggregate the fetched rows in Python",
    )
    create_window_function = _not_supported(
        "create_window_function",
        f"{_ON_MEMBER}, so it cannot call a Python window function; use SQLite's "
        "built-in window functions",
    )
    create_collation = _not_supported(
        "create_collation",
        f"{_ON_MEMBER}, so it cannot call a Python collation; use BINARY, NOCASE or "
        "RTRIM, or sort the fetched rows in Python",
    )
    set_authorizer = _not_supported(
        "set_authorizer",
        f"{_ON_MEMBER}, which applies its own checks and the user's role "
        "(read, write, admin); restrict what a client may do with roles",
    )
    set_progress_handler = _not_supported(
        "set_progress_handler",
        f"{_ON_MEMBER}; bound how long a statement may run with statement_timeout= in the "
        "URL, and stop one with interrupt()",
    )
    set_trace_callback = _not_supported(
        "set_trace_callback",
        f"{_ON_MEMBER}; log the statements you pass to execute() instead",
    )
    enable_load_extension = _not_supported(
        "enable_load_extension",
        f"{_ON_MEMBER}, and extensions would have to be loaded into every member",
    )
    load_extension = _not_supported(
        "load_extension",
        f"{_ON_MEMBER}, and extensions would have to be loaded into every member",
    )
    blobopen = _not_supported(
        "blobopen",
        f"{_ON_MEMBER}, so there is no BLOB handle to hold here; read and write "
        "BLOBs with SELECT and UPDATE",
    )
    deserialize = _not_supported(
        "deserialize",
        "it would replace the mirrored database behind the journal's back; add a "
        "database from a file with 'litemirror db add NAME --from FILE'",
    )
    getlimit = _not_supported("getlimit", f"{_ON_MEMBER}, whose limits are SQLite's defaults")
    setlimit = _not_supported("setlimit", f"{_ON_MEMBER}, whose limits are SQLite's defaults")
