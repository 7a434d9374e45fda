"""Translate apsw (SQLite) exceptions into the litemirror exception tree.

The message is SQLite's own ("UNIQUE constraint failed: t.id"), as
:mod:`sqlite3` reports it, so programs that show or match it keep working;
``sqlite_code`` carries SQLite's primary result code, ``sqlite_errorcode``
and ``sqlite_errorname`` the extended one, as :mod:`sqlite3` does. The classes follow
:mod:`sqlite3` exactly (SQL errors such as a syntax error or an unknown table
are ``OperationalError``, a datatype mismatch is ``IntegrityError``), so a
program moved from ``sqlite3`` to litemirror catches the same exceptions.
"""

from __future__ import annotations

import re

import apsw

from litemirror.errors import (
    DatabaseError,
    DataError,
    DiskFullError,
    IntegrityError,
    InternalError,
    OperationalError,
    ProgrammingError,
)

_BY_CLASS: tuple[tuple[type[BaseException], type[DatabaseError]], ...] = (
    (apsw.ConstraintError, IntegrityError),
    (apsw.SQLError, OperationalError),
    (apsw.BindingsError, ProgrammingError),
    (apsw.MisuseError, ProgrammingError),
    (apsw.ExecutionCompleteError, ProgrammingError),
    (apsw.FullError, DiskFullError),
    (apsw.BusyError, OperationalError),
    (apsw.LockedError, OperationalError),
    (apsw.TooBigError, DataError),
    (apsw.MismatchError, IntegrityError),
    (apsw.RangeError, DataError),
    (apsw.ReadOnlyError, OperationalError),
    (apsw.IOError, OperationalError),
    (apsw.CantOpenError, OperationalError),
    (apsw.PermissionsError, OperationalError),
    (apsw.InterruptError, OperationalError),
    (apsw.AbortError, OperationalError),
    (apsw.SchemaChangeError, OperationalError),
    (apsw.AuthError, OperationalError),
    (apsw.NoMemError, OperationalError),
    (apsw.ProtocolError, OperationalError),
    (apsw.ConnectionClosedError, OperationalError),
    (apsw.CorruptError, DatabaseError),
    (apsw.NotADBError, DatabaseError),
    (apsw.InternalError, InternalError),
    (apsw.NotFoundError, InternalError),
)


#: apsw's wording of a wrong parameter count, which sqlite3 words differently.
_BINDINGS = re.compile(
    r"Incorrect number of bindings supplied\.\s+The current statement uses (\d+) and "
    r"there are (\d+) supplied\..*",
    re.S,
)


def _message(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], str):
        text: str = exc.args[0]
        if match := _BINDINGS.fullmatch(text):
            return (
                "Incorrect number of bindings supplied. The current statement uses "
                f"{match[1]}, and there are {match[2]} supplied."
            )
        return text
    return str(exc) or type(exc).__name__


def translate(exc: BaseException) -> DatabaseError:
    """Return the litemirror error for an exception raised by apsw.

    Besides ``apsw.Error`` this handles what apsw raises for bad parameters:
    ``KeyError`` (a named parameter is missing), ``TypeError`` (a value type
    SQLite cannot store) and ``OverflowError`` (an int beyond 64 bits).
    The caller raises the result ``from exc``.
    """
    if isinstance(exc, KeyError):
        name = exc.args[0] if exc.args else "?"
        return ProgrammingError(f"You did not supply a value for binding parameter :{name}.")
    if isinstance(exc, TypeError):
        return ProgrammingError(f"Error binding parameter: {_message(exc)}")
    if isinstance(exc, OverflowError):
        return DataError(f"Python int too large to convert to SQLite INTEGER: {_message(exc)}")
    code = getattr(exc, "result", None)
    sqlite_code = code if isinstance(code, int) and code >= 0 else None
    # sqlite3 reports the extended code and its name; so do we.
    extended = getattr(exc, "extendedresult", None)
    errorcode = extended if isinstance(extended, int) and extended > 0 else sqlite_code
    name = (
        apsw.mapping_extended_result_codes.get(errorcode)
        or apsw.mapping_result_codes.get(errorcode)
        if errorcode is not None
        else None
    )
    cls = next((ours for theirs, ours in _BY_CLASS if isinstance(exc, theirs)), DatabaseError)
    return cls(
        _message(exc),
        sqlite_code=sqlite_code,
        sqlite_errorcode=errorcode,
        sqlite_errorname=name if isinstance(name, str) else None,
    )
