"""Rejoin after a failover: roll back, and keep, the records the new primary never had.

A deposed primary may hold journal records that never reached the member
that took over (with ``ack = "received"``, or records whose commit was never
acknowledged). Before it follows the new primary they must go: the journal
is truncated to the last record both share, and every removed record whose
changes reached a database is undone with the inverted changesets, newest
first, in one transaction per database. Nothing is silently discarded:
every removed record is first written to ``<data_dir>/diverged/`` — time,
database, tables and row counts, and the changes themselves — for a person
to review (``litemirror diverged list|show|apply``: cli/diverged.py reads
the format written by :func:`keep`).

DDL cannot be inverted. If a removed, applied record holds DDL, the rollback
is refused (:class:`CannotRollBack`) and the member is re-seeded instead;
the kept file is written all the same.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from litemirror.durable import write_atomic
from litemirror.engine import apply as engine_apply
from litemirror.engine import meta
from litemirror.engine.ops import VACUUM_SQL, ChangesetOp, SqlOp, decode_ops
from litemirror.errors import Error
from litemirror.journal import Journal, Record, RecordKind
from litemirror.server.storage.registry import Registry


class CannotRollBack(Error):
    """The diverged records cannot be undone safely; the member needs a base copy."""


@dataclass
class RollbackReport:
    common_lsn: int
    removed: int = 0
    undone: int = 0
    kept_file: Path | None = None
    databases: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def sentence(self) -> str:
        tables = sum(len(t) for t in self.databases.values())
        return (
            f"rolled back {self.removed} journal record(s) after LSN {self.common_lsn} that "
            f"the new primary never had ({self.undone} had reached the databases, "
            f"{tables} table(s) touched); kept in {self.kept_file} "
            "(`litemirror diverged show` shows them, `diverged apply` re-applies them)"
        )


def _counts(ops: list[ChangesetOp | SqlOp]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for op in ops:
        if isinstance(op, ChangesetOp):
            for change in apsw.Changeset.iter(op.data):
                out[change.name][change.op.lower()] += 1
        else:
            out["(schema)"]["statements"] += 1
    return {t: dict(c) for t, c in out.items()}


def keep(
    records: list[Record], out_dir: Path, common: int
) -> tuple[Path, dict[str, dict[str, dict[str, int]]]]:
    """Write the diverged records to a file a person can review, whole and durably."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = out_dir / f"diverged-{stamp}-lsn{records[0].lsn}-{records[-1].lsn}.jsonl"
    summary: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    lines: list[str] = []
    for rec in records:
        entry: dict[str, object] = {
            "lsn": rec.lsn,
            "epoch": rec.epoch,
            "kind": RecordKind(rec.kind).name,
            "database": rec.db,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rec.ts_ms / 1000)),
        }
        if rec.kind == RecordKind.CHANGES:
            ops = decode_ops(rec.payload)
            counts = _counts(ops)
            for table, c in counts.items():
                agg = summary[rec.db].setdefault(table, {})
                for k, v in c.items():
                    agg[k] = agg.get(k, 0) + v
            entry["tables"] = counts
            entry["sql"] = [op.sql for op in ops if isinstance(op, SqlOp)]
            # In their order: a changeset applies under the schema of its
            # place between the SQL statements (``litemirror diverged``).
            entry["ops"] = [
                {"sql": op.sql}
                if isinstance(op, SqlOp)
                else {"changeset": base64.b64encode(op.data).decode()}
                for op in ops
            ]
        lines.append(json.dumps(entry) + "\n")
    lines.append(
        json.dumps(
            {
                "report": "records rolled back on rejoin",
                "after_lsn": common,
                "count": len(records),
                "tables": summary,
            }
        )
        + "\n"
    )
    # Durable before the records leave the journal: the file, and its entry in the directory.
    write_atomic(path, "".join(lines).encode())
    return path, dict(summary)


def rollback_divergent(
    journal: Journal, registry: Registry, common: int, out_dir: Path
) -> RollbackReport:
    """Remove journal records after ``common``, keep them, undo their changes (blocking).

    Runs on the journal's writer thread. Raises :class:`CannotRollBack` when
    undoing is not safe; the records are kept and removed from the journal
    either way.
    """
    report = RollbackReport(common_lsn=common)
    tail = [r for r in journal.read_from(common + 1)] if journal.last_lsn > common else []
    if not tail:
        return report
    report.kept_file, report.databases = keep(tail, out_dir, common)
    by_db: dict[str, list[Record]] = defaultdict(list)
    for rec in tail:
        if rec.kind == RecordKind.CHANGES and registry.exists(rec.db):
            by_db[rec.db].append(rec)
        elif rec.kind in (RecordKind.CREATE_DB, RecordKind.IMPORT_DB):
            journal.truncate_after(common)
            report.removed = len(tail)
            raise CannotRollBack(
                f"the diverged records create database {rec.db!r}; a base copy is needed"
            )
    journal.truncate_after(common)
    report.removed = len(tail)
    for db, recs in by_db.items():
        conn = engine_apply.open_apply_connection(str(registry.path(db)))
        try:
            applied_to = meta.read_lsn(conn)
            applied = [r for r in recs if r.lsn <= applied_to]
            if not applied:
                if applied_to > common:
                    with conn:
                        meta.write_lsn(conn, common)
                continue
            inverse: list[ChangesetOp | SqlOp] = []
            for rec in reversed(applied):
                ops = decode_ops(rec.payload)
                sql = [op.sql for op in ops if isinstance(op, SqlOp)]
                if sql:
                    what = "a VACUUM" if VACUUM_SQL in sql else "DDL"
                    raise CannotRollBack(
                        f"record {rec.lsn} of database {db!r} holds {what}, "
                        "which cannot be undone; a base copy is needed"
                    )
                for op in reversed(ops):
                    assert isinstance(op, ChangesetOp)
                    inverse.append(ChangesetOp(apsw.Changeset.invert(op.data)))
            conn.execute("BEGIN IMMEDIATE")
            try:
                engine_apply.apply_ops(conn, inverse)
                meta.write_lsn(conn, common)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            report.undone += len(applied)
        finally:
            conn.close()
    return report
