"""The diverged-records file, read back; its row changes as guarded SQL (pure).

Theory of operation
-------------------
A member that rejoins after a failover rolls back the journal records the
new primary never had and keeps them in
``<data_dir>/diverged/diverged-<UTC time>-lsn<first>-<last>.jsonl``
(:func:`litemirror.server.stream.rejoin.keep`): one JSON line per record, then one
report line. A ``CHANGES`` record lists its operations in order: SQL
statements (DDL, replicated pragmas, AUTOINCREMENT counters) and SQLite
session changesets (base64). Files written before the order was kept hold
``sql`` and ``changesets_base64`` apart; they are read too, and marked
unordered.

A changeset names a table and gives each row change by column *position*:
old values (every column for a DELETE; the key and the changed columns for
an UPDATE) and new ones (every column for an INSERT; the changed ones for
an UPDATE). Names come from the table as it is now (:class:`TableShape`)
when the column count fits; a table without a primary key is keyed by
rowid, which the changeset carries as an extra first column.

Re-executing a row change on the current primary (:func:`row_step`) is one
guarded write and one check, so nothing the primary changed since is
overwritten:

========  ===============================================  ===================================
change    the write changes the row only if ...            "already in place" when ...
========  ===============================================  ===================================
INSERT    no row has its key                               a row holds all of its values
UPDATE    the row with its key holds the old values        that row holds the new values
DELETE    the row with its key holds all the old values    no row has its key
========  ===============================================  ===================================

A write that changed no row and is not already in place is a *conflict*.
Values are compared with SQL ``IS`` (NULL-safe, SQLite's own comparison).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import apsw

from litemirror.engine.policy import quote_ident, sql_literal
from litemirror.errors import DataError


class _Unchanged:
    """A column an UPDATE does not record (neither its old nor its new value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
Value = None | int | float | str | bytes
Cell = Value | _Unchanged
Counts = dict[str, dict[str, int]]

_SEQUENCE = re.compile(r"\s*(?:DELETE\s+FROM|INSERT\s+INTO|UPDATE)\s+sqlite_sequence\b", re.I)
_STAMP = re.compile(r"diverged-(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)-")


@dataclass(frozen=True, slots=True)
class RowChange:
    table: str
    op: str  # INSERT, UPDATE or DELETE
    #: Positions of the key columns (the rowid for a table without a primary key).
    key: tuple[int, ...]
    old: tuple[Cell, ...] | None
    new: tuple[Cell, ...] | None
    #: Made by a trigger or a foreign-key action, not by a statement.
    indirect: bool = False

    @property
    def width(self) -> int:
        row = self.old if self.old is not None else self.new
        return len(row) if row is not None else 0


@dataclass(frozen=True, slots=True)
class SqlChange:
    sql: str

    @property
    def is_sequence(self) -> bool:
        """An AUTOINCREMENT counter update (re-executed INSERTs move the counter themselves)."""
        return bool(_SEQUENCE.match(self.sql))


Change = RowChange | SqlChange


@dataclass(frozen=True)
class KeptRecord:
    lsn: int
    epoch: int
    kind: str  # CHANGES, CREATE_DB, DROP_DB, IMPORT_DB, MARKER
    database: str
    time: str
    tables: Counts
    #: ("sql", statement) or ("changeset", base64), in the record's order.
    ops: tuple[tuple[str, str], ...] = ()
    #: False: an older file that kept SQL and changesets apart (order unknown).
    ordered: bool = True

    def changes(self) -> list[Change]:
        out: list[Change] = []
        for tag, value in self.ops:
            if tag == "sql":
                out.append(SqlChange(value))
            else:
                out.extend(decode_changeset(_unbase64(value, self.lsn)))
        return out

    @property
    def mixed(self) -> bool:
        """Holds both SQL and row changes (their order matters)."""
        return len({tag for tag, _ in self.ops}) > 1


@dataclass(frozen=True)
class KeptFile:
    name: str
    records: tuple[KeptRecord, ...]
    #: The last LSN the member shared with the new primary (None: no report line).
    after_lsn: int | None
    #: database -> table -> operation -> rows
    summary: dict[str, Counts]

    @property
    def complete(self) -> bool:
        return self.after_lsn is not None

    @property
    def lsns(self) -> tuple[int, int] | None:
        return (self.records[0].lsn, self.records[-1].lsn) if self.records else None

    @property
    def databases(self) -> list[str]:
        return sorted({r.database for r in self.records})

    @property
    def rolled_back_at(self) -> str | None:
        """When the member rolled the records back, from the file name (UTC)."""
        m = _STAMP.match(self.name)
        if m is None:
            return None
        y, mo, d, h, mi, s = m.groups()
        return f"{y}-{mo}-{d} {h}:{mi}:{s} UTC"


def _unbase64(text: str, lsn: int) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"record {lsn}: a changeset is not valid base64") from None


def _cell(v: Any) -> Cell:
    return UNCHANGED if v is apsw.no_change else v


def decode_changeset(data: bytes) -> list[RowChange]:
    """The row changes of one session changeset, in its order."""
    out: list[RowChange] = []
    try:
        for ch in apsw.Changeset.iter(data):
            out.append(
                RowChange(
                    table=ch.name,
                    op=ch.op,
                    key=tuple(sorted(ch.pk_columns)),
                    old=None if ch.old is None else tuple(_cell(v) for v in ch.old),
                    new=None if ch.new is None else tuple(_cell(v) for v in ch.new),
                    indirect=bool(ch.indirect),
                )
            )
    except apsw.Error as exc:
        raise DataError(f"a changeset does not decode: {exc}") from None
    return out


def _add(into: Counts, counts: Counts) -> None:
    for table, ops in counts.items():
        agg = into.setdefault(table, {})
        for op, n in ops.items():
            agg[op] = agg.get(op, 0) + int(n)


def _record(entry: dict[str, Any], where: str) -> KeptRecord:
    try:
        ops: list[tuple[str, str]] = []
        ordered = "ops" in entry
        if ordered:
            for op in entry["ops"]:
                ops.append(
                    ("sql", str(op["sql"])) if "sql" in op else ("changeset", op["changeset"])
                )
        else:
            ops = [("sql", str(s)) for s in entry.get("sql", [])]
            ops += [("changeset", str(c)) for c in entry.get("changesets_base64", [])]
        return KeptRecord(
            lsn=int(entry["lsn"]),
            epoch=int(entry["epoch"]),
            kind=str(entry["kind"]),
            database=str(entry["database"]),
            time=str(entry.get("time", "")),
            tables={
                str(t): {str(k): int(v) for k, v in c.items()}
                for t, c in entry.get("tables", {}).items()
            },
            ops=tuple(ops),
            ordered=ordered or len({t for t, _ in ops}) < 2,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where}: not a diverged record ({type(exc).__name__}: {exc})") from None


def parse_kept(name: str, lines: Iterable[str]) -> KeptFile:
    """Read a diverged-records file; :class:`DataError` naming the line if it is not one."""
    records: list[KeptRecord] = []
    after: int | None = None
    summary: dict[str, Counts] | None = None
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name} line {no}"
        try:
            entry = json.loads(line)
        except ValueError:
            raise DataError(f"{where} is not JSON: is this a diverged-records file?") from None
        if not isinstance(entry, dict):
            raise DataError(f"{where}: not a diverged record")
        if "report" in entry:
            after = int(entry.get("after_lsn", 0))
            summary = {str(db): dict(t) for db, t in entry.get("tables", {}).items()}
            continue
        records.append(_record(entry, where))
    if not records and after is None:
        raise DataError(f"{name} holds no diverged records")
    if summary is None:  # a file cut short: count from the records themselves
        summary = {}
        for rec in records:
            _add(summary.setdefault(rec.database, {}), rec.tables)
    return KeptFile(name, tuple(records), after, summary)


# ------------------------------------------------------------------ naming


@dataclass(frozen=True, slots=True)
class TableShape:
    """A table's columns as a changeset sees them (``PRAGMA table_info``: no generated ones)."""

    columns: tuple[str, ...]
    #: The table declares a PRIMARY KEY (else its changesets are keyed by rowid).
    has_key: bool

    @classmethod
    def from_table_info(cls, rows: Iterable[tuple[Any, ...]]) -> TableShape | None:
        """From ``PRAGMA table_info`` rows (cid, name, type, notnull, default, pk)."""
        rows = list(rows)
        if not rows:
            return None
        return cls(tuple(str(r[1]) for r in rows), any(int(r[5]) for r in rows))


def rowid_alias(columns: Iterable[str]) -> str | None:
    taken = {c.lower() for c in columns}
    return next((r for r in ("rowid", "_rowid_", "oid") if r not in taken), None)


def names_for(change: RowChange, shape: TableShape | None) -> tuple[str, ...] | None:
    """Column names for the change's positions, or None when the table does not fit."""
    if shape is None or record_columns(change, shape) != len(shape.columns):
        return None
    if shape.has_key:
        return shape.columns
    alias = rowid_alias(shape.columns)
    return None if alias is None else (alias, *shape.columns)


def record_columns(change: RowChange, shape: TableShape) -> int:
    """How many of the table's columns the change holds (its rowid not counted)."""
    # Tables without a PRIMARY KEY are captured keyed by rowid (the session's
    # rowid option): their changes always carry it as an extra first column.
    return change.width if shape.has_key else change.width - 1


def numbered(width: int) -> tuple[str, ...]:
    return tuple(f"#{i}" for i in range(width))


# ------------------------------------------------------------------ display

#: Longest text and blob shown whole; longer ones are cut and their size given.
SHOW_CHARS = 60
SHOW_BYTES = 16


def show_value(v: Cell) -> str:
    """A value as SQL literal text, cut when long (for people, never for execution)."""
    if isinstance(v, _Unchanged):
        return "(unchanged)"
    if isinstance(v, bytes) and len(v) > SHOW_BYTES:
        return f"X'{v[:SHOW_BYTES].hex()}…' ({len(v)} bytes)"
    if isinstance(v, str) and len(v) > SHOW_CHARS:
        return sql_literal(v[:SHOW_CHARS])[:-1] + f"…' ({len(v)} characters)"
    if isinstance(v, float) and v != v:
        return "NULL"
    return sql_literal(v)


def key_text(change: RowChange, names: tuple[str, ...]) -> str:
    row = change.old if change.old is not None else change.new
    assert row is not None
    return ", ".join(f"{names[i]}={show_value(row[i])}" for i in change.key)


def describe(change: RowChange, names: tuple[str, ...]) -> str:
    """One line: ``UPDATE id=5: v 'a' -> 'b'`` / ``INSERT id=7: v='x', w=NULL``."""
    key = key_text(change, names)
    others = [i for i in range(change.width) if i not in change.key]
    if change.op == "UPDATE":
        assert change.old is not None and change.new is not None
        parts = [
            f"{names[i]} {show_value(change.old[i])} -> {show_value(change.new[i])}"
            for i in others
            if not isinstance(change.new[i], _Unchanged)
        ]
    else:
        row = change.new if change.op == "INSERT" else change.old
        assert row is not None
        parts = [f"{names[i]}={show_value(row[i])}" for i in others]
    by = "  (made by a trigger or foreign-key action)" if change.indirect else ""
    return f"{change.op} {key}" + (": " + ", ".join(parts) if parts else "") + by


# ------------------------------------------------------------------ SQL


@dataclass(frozen=True, slots=True)
class Step:
    """One row change as statements for the primary (see the module's table)."""

    #: The guarded write; changes one row, or none when the guard fails.
    write: str
    write_params: tuple[Value, ...]
    #: Returns a row when the change is already in place.
    done: str
    done_params: tuple[Value, ...]
    #: The row with the change's key as it is now (for a conflict's report).
    current: str
    current_params: tuple[Value, ...]

    def shown(self) -> str:
        """The write with its values written in (long ones cut): what a person reads."""
        # Every "?" outside a quoted identifier is a parameter (the write holds no literals).
        parts = re.split(r'("(?:[^"]|"")*")', self.write)
        values = iter(self.write_params)
        return "".join(
            p if p.startswith('"') else re.sub(r"\?", lambda _: show_value(next(values)), p)
            for p in parts
        )


def _where(
    names: tuple[str, ...], cols: Iterable[int], row: tuple[Cell, ...]
) -> tuple[str, tuple[Value, ...]]:
    cols = list(cols)
    params: list[Value] = []
    for i in cols:
        v = row[i]
        assert not isinstance(v, _Unchanged)
        params.append(v)
    return " AND ".join(f"{quote_ident(names[i])} IS ?" for i in cols), tuple(params)


def row_step(change: RowChange, names: tuple[str, ...]) -> Step:
    """The statements that re-execute ``change`` on a table with columns ``names``."""
    t = quote_ident(change.table)
    every = range(change.width)
    all_names = ", ".join(quote_ident(n) for n in names)
    if change.op == "INSERT":
        assert change.new is not None
        key_sql, key_params = _where(names, change.key, change.new)
        all_sql, all_params = _where(names, every, change.new)
        marks = ", ".join("?" for _ in every)
        write = (
            f"INSERT INTO {t} ({all_names}) SELECT {marks} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {key_sql})"
        )
        return Step(
            write,
            all_params + key_params,
            f"SELECT 1 FROM {t} WHERE {all_sql}",
            all_params,
            f"SELECT {all_names} FROM {t} WHERE {key_sql}",
            key_params,
        )
    assert change.old is not None
    key_sql, key_params = _where(names, change.key, change.old)
    current = (f"SELECT {all_names} FROM {t} WHERE {key_sql}", key_params)
    if change.op == "DELETE":
        all_sql, all_params = _where(names, every, change.old)
        return Step(
            f"DELETE FROM {t} WHERE {all_sql}",
            all_params,
            f"SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {key_sql})",
            key_params,
            *current,
        )
    assert change.op == "UPDATE" and change.new is not None
    new = change.new
    changed = [i for i in every if not isinstance(new[i], _Unchanged) and i not in change.key]
    set_sql = ", ".join(f"{quote_ident(names[i])} = ?" for i in changed)
    set_params = tuple(v for i in changed if not isinstance(v := new[i], _Unchanged))
    old_sql, old_params = _where(names, [*change.key, *changed], change.old)
    new_row = tuple(new[i] if i in changed else change.old[i] for i in every)
    new_sql, new_params = _where(names, [*change.key, *changed], new_row)
    return Step(
        f"UPDATE {t} SET {set_sql} WHERE {old_sql}",
        set_params + old_params,
        f"SELECT 1 FROM {t} WHERE {new_sql}",
        new_params,
        *current,
    )


# ------------------------------------------------------------------ show


def show_lines(
    kept: KeptFile, shapes: Callable[[str, str], tuple[TableShape | None, str]]
) -> list[str]:
    """The text of ``diverged show``: rows per table with old and new values, and SQL."""
    seen: dict[tuple[str, str], tuple[TableShape | None, str]] = {}
    lsns = kept.lsns
    out = [
        f"{kept.name}: {len(kept.records)} record(s)"
        + (f", LSN {lsns[0]}-{lsns[1]}" if lsns else "")
        + (f", rolled back {kept.rolled_back_at}" if kept.rolled_back_at else "")
        + (f" after LSN {kept.after_lsn}" if kept.after_lsn is not None else "")
    ]
    for rec in kept.records:
        out.append("")
        out.append(
            f"LSN {rec.lsn}  epoch {rec.epoch}  {rec.time} UTC  database {rec.database}"
            + ("" if rec.kind == "CHANGES" else f"  ({rec.kind})")
        )
        if not rec.ordered:
            out.append("  (older file: the order of its SQL and row changes is not known)")
        table: str | None = None
        for change in rec.changes():
            if isinstance(change, SqlChange):
                table = None
                what = "AUTOINCREMENT counters" if change.is_sequence else "SQL"
                out.append(f"  {what}: {change.sql}")
                continue
            if (rec.database, change.table) not in seen:
                seen[rec.database, change.table] = shapes(rec.database, change.table)
            shape, source = seen[rec.database, change.table]
            names = names_for(change, shape)
            if change.table != table:
                table = change.table
                out.append(
                    f"  table {table}"
                    + (
                        f" (columns from {source})"
                        if names is not None
                        else " (columns numbered: the table's columns are not known here)"
                    )
                )
            out.append("    " + describe(change, names or numbered(change.width)))
    return out
