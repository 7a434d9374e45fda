"""litemirror: high-availability mirroring for SQLite databases."""

from litemirror.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "__version__",
    "connect",
]

from litemirror.client.dbapi import (
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)

__all__ += ["apilevel", "paramstyle", "threadsafety"]
