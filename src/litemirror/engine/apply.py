"""Apply captured ops to a copy of a database: backups and crash recovery.

Theory of operation
-------------------
``apply_record`` is the one way a journal record reaches a database: in one
``BEGIN IMMEDIATE`` transaction it checks the LSN stored in the meta table
(a record at or below it was applied already and is skipped, so replaying a
journal is idempotent), applies the ops in order, stores the new LSN and
commits. Any error rolls everything back: a record is applied whole or not
at all.

A VACUUM record (:func:`litemirror.engine.ops.is_vacuum`) is the one
exception: VACUUM cannot run inside a transaction (see
:func:`litemirror.engine.maintenance.vacuum`).

The applying connection has triggers disabled and foreign keys off, because
the changesets already contain every row a trigger or a cascade changed on
the primary; firing them again would apply those changes twice.

Changesets are applied strictly: every conflict (a row missing, a row whose
old values differ, a constraint failing) aborts the record with
``InternalError``. A copy that does not match the primary row for row has
diverged, and silently "fixing" it would hide that; the member must be
re-seeded instead.
"""

from __future__ import annotations

from typing import Any

import apsw

from litemirror.engine.maintenance import vacuum
from litemirror.engine.meta import ensure_meta, read_lsn, write_lsn
from litemirror.engine.ops import ChangesetOp, Op, SqlOp, decode_ops, is_vacuum
from litemirror.engine.sqlerrors import translate
from litemirror.errors import DatabaseError, InternalError, OperationalError

DEFAULT_BUSY_TIMEOUT_MS = 5000

_REASONS = {
    apsw.SQLITE_CHANGESET_DATA: "the row's current values differ from the primary's old values",
    apsw.SQLITE_CHANGESET_NOTFOUND: "the row does not exist on this copy",
    apsw.SQLITE_CHANGESET_CONFLICT: "a row with the same key already exists on this copy",
    apsw.SQLITE_CHANGESET_CONSTRAINT: "a constraint failed on this copy",
    apsw.SQLITE_CHANGESET_FOREIGN_KEY: "foreign key constraints failed on this copy",
}


def open_apply_connection(
    path: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
) -> apsw.Connection:
    """Open ``path`` for applying records (WAL, synchronous=NORMAL, no triggers)."""
    try:
        conn = apsw.Connection(path)
        conn.set_busy_timeout(busy_timeout_ms)
        row = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        mode = row[0] if row else None
        if str(mode).lower() != "wal":
            raise OperationalError(
                f"could not put {path} in WAL mode (it stays in {mode!r} mode); "
                "check that the directory is writable and not on a network file system."
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
        ensure_meta(conn)
    except apsw.Error as exc:
        raise _opening_error(path, exc) from exc
    return conn


def _opening_error(path: str, exc: apsw.Error) -> DatabaseError:
    err = translate(exc)
    return type(err)(
        f"cannot open {path} to apply records: {err.message}", sqlite_code=err.sqlite_code
    )


def apply_ops(conn: apsw.Connection, ops: list[Op]) -> None:
    """Apply ops in order, inside the caller's transaction."""
    for index, op in enumerate(ops):
        if isinstance(op, ChangesetOp):
            _apply_changeset(conn, op.data, index)
        elif isinstance(op, SqlOp):
            try:
                conn.execute(op.sql, can_cache=False)
            except apsw.Error as exc:
                raise InternalError(
                    f"replaying statement {index} of the record failed on this copy: "
                    f"{translate(exc).message} (statement: {op.sql[:200]!r}). The copy's schema "
                    "differs from the primary's; nothing of the record was applied."
                ) from exc


def _apply_changeset(conn: apsw.Connection, data: bytes, index: int) -> None:
    conflicts: list[str] = []
    missing: list[str] = []

    def table_exists(name: str) -> bool:
        # The session module silently skips tables it cannot find; for a
        # mirror that is divergence, so it is reported instead.
        found = (
            conn.execute(
                "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
            is not None
        )
        if not found:
            missing.append(name)
        return found

    def on_conflict(reason: int, change: Any) -> int:
        why = _REASONS.get(reason, f"conflict {reason}")
        key = change.old if change.old is not None else change.new
        conflicts.append(f"{change.op} on table {change.name!r}: {why} (row {_short(key)})")
        return apsw.SQLITE_CHANGESET_ABORT

    try:
        apsw.Changeset.apply(data, conn, filter=table_exists, conflict=on_conflict)
    except apsw.Error as exc:
        detail = "; ".join(conflicts) or translate(exc).message
        raise InternalError(
            f"changeset {index} of the record does not apply to this copy: {detail}. "
            "The copy has diverged from the primary; nothing of the record was applied. "
            "Re-seed this member."
        ) from exc
    if missing:
        raise InternalError(
            f"changeset {index} of the record changes table(s) {', '.join(missing)} that "
            "this copy does not have. The copy has diverged from the primary; nothing of "
            "the record was applied. Re-seed this member."
        )


def _short(values: Any) -> str:
    text = repr(values)
    return text if len(text) <= 120 else text[:117] + "..."


def apply_record(conn: apsw.Connection, lsn: int, payload: bytes) -> bool:
    """Apply one journal record atomically; return False if it was applied before.

    Raises the litemirror error of what went wrong, with the database exactly
    as it was before the call (meta LSN included).
    """
    ops = decode_ops(payload)
    if is_vacuum(ops):
        return vacuum(conn, lsn)
    try:
        conn.execute("BEGIN IMMEDIATE", can_cache=False)
    except apsw.Error as exc:
        raise translate(exc) from exc
    try:
        if read_lsn(conn) >= lsn:
            conn.execute("ROLLBACK", can_cache=False)
            return False
        apply_ops(conn, ops)
        write_lsn(conn, lsn)
        conn.execute("COMMIT", can_cache=False)
    except apsw.Error as exc:
        _rollback(conn)
        raise translate(exc) from exc
    except BaseException:
        _rollback(conn)
        raise
    return True


def _rollback(conn: apsw.Connection) -> None:
    if not conn.get_autocommit():
        conn.execute("ROLLBACK", can_cache=False)
