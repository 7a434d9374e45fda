"""The one exception tree of litemirror.

Every error says what happened, what it affected and what to do about it.
Library errors (apsw, OSError, msgspec) are translated at the edge with
``raise OurError(...) from exc`` so callers only ever catch these classes.
The DB-API 2.0 (PEP 249) names are part of the tree, and each of them also
subclasses the :mod:`sqlite3` class of the same name, so a program written
for :mod:`sqlite3` catches litemirror's errors unchanged
(``except sqlite3.IntegrityError`` catches :class:`IntegrityError`)::

    Error (sqlite3.Error)                  PEP 249 base; every litemirror error
    ├── InterfaceError (sqlite3.…)         misuse of the driver (closed cursor, ...)
    ├── ConfigError                        bad configuration; names key and value
    ├── ProtocolError                      malformed, oversized or unexpected frame
    │   └── FrameTooLargeError
    ├── JournalError                       the journal cannot be read or written
    │   └── JournalCorruptError            a record fails its checksum mid-file
    ├── BackupError                        a backup cannot be taken, listed or trusted
    │   └── RestoreError                   a restore refused: damaged file, target out of range
    └── DatabaseError (sqlite3.…)
        ├── DataError (sqlite3.…)
        ├── IntegrityError (sqlite3.…)     constraint violated (SQLite code kept)
        ├── InternalError (sqlite3.…)
        ├── ProgrammingError (sqlite3.…)   bad SQL, wrong parameters
        ├── NotSupportedError (sqlite3.…)
        └── OperationalError (sqlite3.…)
            ├── DiskFullError              SQLITE_FULL / ENOSPC; nothing changed
            ├── NotPrimaryError            write sent to a member that is not primary
            ├── ConnectionLostError        the member went away mid-request (retryable)
            ├── TransactionAbortedError    transaction in flight lost its member (retryable)
            ├── CommitUnknownError         the member lost its role mid-commit: outcome unknown
            ├── UnavailableError           no member could be reached / in trouble
            ├── AuthenticationError        credentials missing or not accepted
            └── PermissionDeniedError      the user's role does not allow the action

    Warning (sqlite3.Warning)              PEP 249 Warning; not raised today

An error that came from SQLite carries, like :mod:`sqlite3`'s,
``sqlite_errorcode`` (the extended result code, e.g. 2067) and
``sqlite_errorname`` (``"SQLITE_CONSTRAINT_UNIQUE"``); as in :mod:`sqlite3`,
other errors do not have these attributes. ``sqlite_code`` is the primary
result code (19), None for errors that did not come from SQLite.
``retryable`` tells the driver (and the application) whether running the
same transaction again, from the start, is safe and may succeed.
"""

from __future__ import annotations

import sqlite3

#: SQLite's primary result codes by number: the name of an error whose member
#: (an older release) sent only the code.
PRIMARY_NAMES: dict[int, str] = {
    1: "SQLITE_ERROR", 2: "SQLITE_INTERNAL", 3: "SQLITE_PERM", 4: "SQLITE_ABORT",
    5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY",
    9: "SQLITE_INTERRUPT", 10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND",
    13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN", 15: "SQLITE_PROTOCOL", 16: "SQLITE_EMPTY",
    17: "SQLITE_SCHEMA", 18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH",
    21: "SQLITE_MISUSE", 22: "SQLITE_NOLFS", 23: "SQLITE_AUTH", 24: "SQLITE_FORMAT",
    25: "SQLITE_RANGE", 26: "SQLITE_NOTADB", 27: "SQLITE_NOTICE", 28: "SQLITE_WARNING",
}  # fmt: skip


class Error(sqlite3.Error):
    """Base of every litemirror error (PEP 249 ``Error``; a :class:`sqlite3.Error`)."""

    retryable: bool = False
    #: SQLite's primary result code when the error came from SQLite, else None.
    sqlite_code: int | None = None
    # ``sqlite_errorcode`` (SQLite's extended result code) and ``sqlite_errorname``
    # (e.g. "SQLITE_CONSTRAINT_UNIQUE") are set, as sqlite3 sets them, only on an
    # error that came from SQLite: like sqlite3's, other errors have no such attribute.
    sqlite_errorcode: int
    sqlite_errorname: str
    #: Rows the failed request's statements had changed before it failed, as
    #: SQLite counts them for ``total_changes`` (an ``executemany`` that fails
    #: at its third parameter set has changed the rows of the first two).
    changes: int = 0

    def __init__(
        self,
        message: str,
        *,
        sqlite_code: int | None = None,
        sqlite_errorcode: int | None = None,
        sqlite_errorname: str | None = None,
        primary: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if sqlite_errorcode is None:
            sqlite_errorcode = sqlite_code
        if sqlite_code is None and sqlite_errorcode is not None:
            sqlite_code = sqlite_errorcode & 0xFF
        if sqlite_code is not None:
            self.sqlite_code = sqlite_code
        if sqlite_errorcode is not None:
            self.sqlite_errorcode = sqlite_errorcode
            self.sqlite_errorname = (
                sqlite_errorname
                or PRIMARY_NAMES.get(sqlite_errorcode)
                or PRIMARY_NAMES.get(sqlite_errorcode & 0xFF, "unknown error code")
            )
        #: Address of the member believed to be primary, when known.
        self.primary = primary
        if retryable is not None:
            self.retryable = retryable


class Warning(sqlite3.Warning):
    """PEP 249 ``Warning`` (a :class:`sqlite3.Warning`); litemirror does not raise it today."""


class InterfaceError(Error, sqlite3.InterfaceError):
    """The driver was used wrongly: closed connection or cursor, bad URL."""


class ConfigError(Error):
    """The configuration is invalid. The message names the key and the bad value."""


class ProtocolError(Error):
    """A frame was malformed, of an unknown type, or not expected now."""


class FrameTooLargeError(ProtocolError):
    """A frame announced a length above the configured limit."""


class JournalError(Error):
    """The journal could not be read or written."""


class JournalCorruptError(JournalError):
    """A journal record failed its checksum somewhere other than the tail."""


class BackupError(Error):
    """A backup could not be taken, or a backup set is malformed or inconsistent."""


class RestoreError(BackupError):
    """A restore was refused: a damaged or missing backup file, a target outside
    what the backup and archive hold, an output file in the way. Nothing was written."""


class DatabaseError(Error, sqlite3.DatabaseError):
    """PEP 249 ``DatabaseError``: an error reported by the database."""


class DataError(DatabaseError, sqlite3.DataError):
    """Bad value: out of range, wrong type for the operation."""


class OperationalError(DatabaseError, sqlite3.OperationalError):
    """The operation could not run: locked, I/O, lost member, not primary."""


class IntegrityError(DatabaseError, sqlite3.IntegrityError):
    """A constraint (UNIQUE, NOT NULL, CHECK, FOREIGN KEY) was violated."""


class InternalError(DatabaseError, sqlite3.InternalError):
    """Something inside litemirror or SQLite is inconsistent; please report it."""


class ProgrammingError(DatabaseError, sqlite3.ProgrammingError):
    """Bad SQL, wrong number of parameters, unknown table."""


class NotSupportedError(DatabaseError, sqlite3.NotSupportedError):
    """The feature is not available through litemirror."""


class DiskFullError(OperationalError):
    """The disk holding the database or the journal is full. Nothing was changed."""


class NotPrimaryError(OperationalError):
    """A write reached a member that is not the primary. ``primary`` names it if known."""

    retryable = True


class ConnectionLostError(OperationalError):
    """The connection to the member broke during the request."""

    retryable = True


class TransactionAbortedError(OperationalError):
    """The transaction in flight was lost with its member; run it again from the start."""

    retryable = True


class CommitUnknownError(OperationalError):
    """The member stopped being primary while this commit waited for the backup.

    The backup may already hold it, in which case the new primary committed it.
    Check (read your row back) before running the transaction again.
    """


class UnavailableError(OperationalError):
    """No member could serve the request (all down, or the primary is in trouble)."""

    retryable = True


class AuthenticationError(OperationalError):
    """The member did not accept the credentials, or none were given where needed.

    The message is the same whether the user exists or not. Give a user name
    and password (``litemirror://user:password@host/db``) or a client
    certificate that names a user.
    """


class PermissionDeniedError(OperationalError):
    """The logged-in user's role (read, write, admin) does not allow this action.

    Nothing was changed. The message names the role the action needs.
    """


#: Wire name -> class, for carrying errors from member to driver.
BY_NAME: dict[str, type[Error]] = {
    cls.__name__: cls
    for cls in (
        Error,
        InterfaceError,
        ConfigError,
        ProtocolError,
        FrameTooLargeError,
        JournalError,
        JournalCorruptError,
        DatabaseError,
        DataError,
        OperationalError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
        DiskFullError,
        NotPrimaryError,
        ConnectionLostError,
        TransactionAbortedError,
        CommitUnknownError,
        UnavailableError,
        AuthenticationError,
        PermissionDeniedError,
    )
}
