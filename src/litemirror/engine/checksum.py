"""Logical checksums of a database, to prove two copies are identical.

Every table that holds data is hashed row by row in a stable order: user
tables, WITHOUT ROWID tables, the shadow tables behind FTS5 and R-Tree
indexes, and SQLite's ``sqlite_sequence`` / ``sqlite_stat1``. Virtual tables
themselves are skipped (their shadow tables hold their data) and so is the
meta table, which differs by design. The schema (``sqlite_schema`` without
root page numbers) is hashed as the pseudo-table ``"(schema)"``.

Values are hashed with their type (MessagePack keeps 1, 1.0, '1' and b'1'
apart). Rows are ordered by rowid for tables without a declared primary key
(their rowids are replicated) and by primary key otherwise; for a rowid
table with a non-INTEGER primary key the rowid is neither hashed nor used,
because SQLite itself does not keep such rowids stable (VACUUM renumbers
them) and changesets identify those rows by key. ``sqlite_*`` tables are
ordered by all their columns.

Everything is read in one read transaction: in WAL mode that is a snapshot
and does not block the writer.
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec
import xxhash

from litemirror.engine.meta import META_TABLE

SCHEMA_KEY = "(schema)"

_encode = msgspec.msgpack.Encoder().encode


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_query(conn: apsw.Connection, name: str) -> str:
    info = list(conn.execute(f"PRAGMA main.table_xinfo({_ident(name)})"))
    # hidden: 0 ordinary, 1 hidden (virtual tables only), 2/3 generated columns.
    columns = [row[1] for row in info if row[6] != 1]
    pk = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
    cols = ", ".join(_ident(c) for c in columns)
    table = f"main.{_ident(name)}"
    if name.startswith("sqlite_"):
        order = ", ".join(_ident(c) for c in columns)
        return f"SELECT {cols} FROM {table} ORDER BY {order}"
    if pk:
        rest = [c for c in columns if c not in pk]
        order = ", ".join(_ident(c) for c in pk + rest)
        return f"SELECT {cols} FROM {table} ORDER BY {order}"
    lowered = {c.lower() for c in columns}
    rowid = next((r for r in ("rowid", "_rowid_", "oid") if r not in lowered), None)
    if rowid is None:
        return f"SELECT {cols} FROM {table} ORDER BY {cols}"
    return f"SELECT {rowid}, {cols} FROM {table} ORDER BY {rowid}"


def _data_tables(conn: apsw.Connection) -> list[str]:
    return [
        name
        for name, sql in conn.execute(
            "SELECT name, sql FROM main.sqlite_schema WHERE type = 'table' ORDER BY name"
        )
        if name != META_TABLE and not (sql or "").upper().startswith("CREATE VIRTUAL TABLE")
    ]


def _hash_rows(rows: Any) -> str:
    digest = xxhash.xxh3_128()
    count = 0
    for row in rows:
        digest.update(_encode(row))
        count += 1
    digest.update(_encode(count))
    return digest.hexdigest()


def table_checksums(conn: apsw.Connection) -> dict[str, str]:
    """Checksum of every data table, plus the schema under ``"(schema)"``."""
    own_transaction = conn.get_autocommit()
    if own_transaction:
        conn.execute("BEGIN", can_cache=False)
    try:
        result: dict[str, str] = {}
        result[SCHEMA_KEY] = _hash_rows(
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM main.sqlite_schema "
                "WHERE name != ? AND tbl_name != ? ORDER BY type, name",
                (META_TABLE, META_TABLE),
            )
        )
        for name in _data_tables(conn):
            result[name] = _hash_rows(conn.execute(_table_query(conn, name)))
        return result
    finally:
        if own_transaction:
            conn.execute("COMMIT", can_cache=False)


def database_checksum(conn: apsw.Connection) -> str:
    """One checksum over all of :func:`table_checksums`."""
    return _hash_rows(sorted(table_checksums(conn).items()))
