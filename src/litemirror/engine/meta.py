"""The meta table each mirrored database keeps about itself.

``_litemirror_meta`` holds the LSN of the last journal record applied to the
database, written in the same transaction as the record's changes, so after
a crash the database says exactly which records to replay. It may also hold
other keys (epoch, database uuid, creation time). It is never captured or
replicated as data: capture excludes it, checksums skip it.

Statements here are prepared without the statement cache so that a client
sending the same text can never reuse a statement that was authorized for
the member itself, and they name ``main.`` so that no TEMP object of the
same name can stand in for the table.
"""

from __future__ import annotations

import apsw

META_TABLE = "_litemirror_meta"
LSN_KEY = "lsn"

_CREATE = f"CREATE TABLE IF NOT EXISTS main.{META_TABLE}(k TEXT PRIMARY KEY, v) WITHOUT ROWID"
_EXISTS = "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?"

#: A meta value: what SQLite can store.
MetaValue = None | int | float | str | bytes


def ensure_meta(conn: apsw.Connection) -> None:
    """Create the meta table if it is missing (a schema change: not in a job)."""
    conn.execute(_CREATE, can_cache=False)


def read_value(conn: apsw.Connection, key: str) -> MetaValue:
    """The value stored under ``key``, or None (also when there is no meta table)."""
    if conn.execute(_EXISTS, (META_TABLE,), can_cache=False).fetchone() is None:
        return None
    row = conn.execute(
        f"SELECT v FROM main.{META_TABLE} WHERE k = ?", (key,), can_cache=False
    ).fetchone()
    if row is None:
        return None
    value: MetaValue = row[0]
    return value


def write_value(conn: apsw.Connection, key: str, value: MetaValue) -> None:
    """Store ``key`` inside the caller's transaction."""
    conn.execute(
        f"INSERT INTO main.{META_TABLE}(k, v) VALUES (?, ?) "
        "ON CONFLICT(k) DO UPDATE SET v = excluded.v",
        (key, value),
        can_cache=False,
    )


def read_lsn(conn: apsw.Connection) -> int:
    """LSN of the last record applied to this database (0: none yet)."""
    value = read_value(conn, LSN_KEY)
    return value if isinstance(value, int) else 0


def write_lsn(conn: apsw.Connection, lsn: int) -> None:
    """Record ``lsn`` as applied, inside the caller's transaction."""
    write_value(conn, LSN_KEY, lsn)
