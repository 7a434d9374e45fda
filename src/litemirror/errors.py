"""The one exception tree of litemirror.

Every error says what happened, what it affected and what to do about it.
Library errors (apsw, OSError, msgspec) are translated at the edge with
``raise OurError(...) from exc`` so callers only ever catch these classes.
The DB-API 2.0 (PEP 249) names are part of the tree, so a program written
for :mod:`sqlite3` catches the same things::

    Error                                  PEP 249 base; every litemirror error
    ├── InterfaceError                     misuse of the driver (closed cursor, ...)
    ├── ConfigError                        bad configuration; names key and value
    ├── ProtocolError                      malformed, oversized or unexpected frame
    │   └── FrameTooLargeError
    ├── JournalError                       the journal cannot be read or written
    │   └── JournalCorruptError            a record fails its checksum mid-file
    └── DatabaseError
        ├── DataError
        ├── IntegrityError                 constraint violated (SQLite code kept)
        ├── InternalError
        ├── ProgrammingError               bad SQL, wrong parameters
        ├── NotSupportedError
        └── OperationalError
            ├── DiskFullError              SQLITE_FULL / ENOSPC; nothing changed
            ├── NotPrimaryError            write sent to a member that is not primary
            ├── ConnectionLostError        the member went away mid-request (retryable)
            ├── TransactionAbortedError    transaction in flight lost its member (retryable)
            ├── CommitUnknownError         the member lost its role mid-commit: outcome unknown
            ├── UnavailableError           no member could be reached / in trouble
            ├── AuthenticationError        credentials missing or not accepted
            └── PermissionDeniedError      the user's role does not allow the action

``retryable`` tells the driver (and the application) whether running the same
transaction again, from the start, is safe and may succeed.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every litemirror error (PEP 249 ``Error``)."""

    retryable: bool = False
    #: SQLite's primary result code when the error came from SQLite, else None.
    sqlite_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        sqlite_code: int | None = None,
        primary: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if sqlite_code is not None:
            self.sqlite_code = sqlite_code
        #: Address of the member believed to be primary, when known.
        self.primary = primary
        if retryable is not None:
            self.retryable = retryable


class Warning(Exception):
    """PEP 249 ``Warning``; litemirror does not raise it today."""


class InterfaceError(Error):
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


class DatabaseError(Error):
    """PEP 249 ``DatabaseError``: an error reported by the database."""


class DataError(DatabaseError):
    """Bad value: out of range, wrong type for the operation."""


class OperationalError(DatabaseError):
    """The operation could not run: locked, I/O, lost member, not primary."""


class IntegrityError(DatabaseError):
    """A constraint (UNIQUE, NOT NULL, CHECK, FOREIGN KEY) was violated."""


class InternalError(DatabaseError):
    """Something inside litemirror or SQLite is inconsistent; please report it."""


class ProgrammingError(DatabaseError):
    """Bad SQL, wrong number of parameters, unknown table."""


class NotSupportedError(DatabaseError):
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
