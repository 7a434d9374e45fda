"""Re-executing diverged records on the current primary: the passes and the conflict policy.

Theory of operation
-------------------
The records of one database run in one transaction on the primary, in LSN
order; each row change is a guarded write (:func:`diverged_records.row_step`)
that changes nothing the primary changed since. A change *conflicts* when
its row is not as the record expects and its effect is not already there,
when the table's columns no longer fit the record, when the primary refuses
the statement (a UNIQUE index, a missing table), or when the record cannot
be re-executed at all (an import, a user change). What then:

* ``stop`` (the default): nothing is applied, in any database; every
  conflict met is reported. Fix the rows on the primary (or choose
  ``skip``) and run again: changes already in place are recognised.
* ``skip``: a record with a conflict is skipped *whole* — a record is one
  group commit, and applying part of it could apply half of a client's
  transaction — and the others are applied. A skipped record can make a
  later one conflict (it needed a row the skipped one made), so the pass is
  rolled back and run again without the skipped records until a pass meets
  no conflict; only that pass is kept.

The clean pass's transaction is left open: the caller commits every
database only once all of them ran clean, and rolls all of them back for a
dry run or on any failure. The primary is reached through a narrow
:class:`Primary` (the driver in the command, an in-memory SQLite database
in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from litemirror import errors
from litemirror.engine.policy import quote_ident

from .diverged_records import (
    KeptFile,
    KeptRecord,
    RowChange,
    SqlChange,
    TableShape,
    Value,
    describe,
    names_for,
    numbered,
    record_columns,
    row_step,
    show_value,
)

Policy = Literal["stop", "skip"]
POLICIES: tuple[Policy, ...] = ("stop", "skip")
Status = Literal["applied", "in place", "not needed", "conflict"]
SYSTEM_DB = "_system"


class Primary(Protocol):
    """What a pass needs of the primary: one database, one transaction at a time."""

    def begin(self) -> None: ...

    def rollback(self) -> None: ...

    def execute(self, sql: str, params: Sequence[Value]) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement in the transaction: (rows changed, rows returned)."""
        ...


@dataclass(frozen=True)
class Outcome:
    lsn: int
    #: The change as a person reads it (or the SQL statement, or the record kind).
    what: str
    status: Status
    #: The statement run on the primary, values written in ("" when none).
    sql: str = ""
    detail: str = ""


@dataclass
class DatabaseRun:
    database: str
    #: Every change of the kept pass (the one whose transaction stays open).
    outcomes: list[Outcome] = field(default_factory=list)
    #: Records left out, with their conflicts (``skip``), or the conflicts met (``stop``).
    conflicts: dict[int, list[str]] = field(default_factory=dict)
    #: ``stop`` met a conflict: the transaction was rolled back, nothing is applied.
    stopped: bool = False

    def applied_records(self) -> list[int]:
        if self.stopped:
            return []
        return sorted({o.lsn for o in self.outcomes} - set(self.conflicts))

    def count(self, status: Status) -> int:
        return 0 if self.stopped else sum(o.status == status for o in self.outcomes)


class _Refused(Exception):
    """The primary refused a statement: the pass ends (its transaction may be unusable)."""


def refused_by_primary(exc: errors.Error) -> bool:
    """A statement the primary ran and refused (a conflict), not a failure of the link or role."""
    if isinstance(
        exc,
        errors.IntegrityError
        | errors.ProgrammingError
        | errors.DataError
        | errors.NotSupportedError,
    ):
        return True
    return type(exc) is errors.OperationalError


def run_database(
    database: str, records: Sequence[KeptRecord], primary: Primary, policy: Policy
) -> DatabaseRun:
    """Run ``records`` (all of ``database``) until a pass is clean; see the module docstring.

    On return the primary's transaction is open unless ``stopped``.
    """
    run = DatabaseRun(database)
    while True:
        primary.begin()
        outcomes, conflicts = _pass(
            [r for r in records if r.lsn not in run.conflicts], primary, run.conflicts
        )
        if not conflicts:
            run.outcomes = outcomes
            return run
        primary.rollback()
        run.conflicts.update(conflicts)
        if policy == "stop":
            run.outcomes = outcomes
            run.stopped = True
            return run


def _pass(
    records: Sequence[KeptRecord], primary: Primary, skipped: dict[int, list[str]]
) -> tuple[list[Outcome], dict[int, list[str]]]:
    outcomes: list[Outcome] = []
    conflicts: dict[int, list[str]] = {}
    shapes: dict[str, TableShape | None] = {}
    for rec in records:
        try:
            for o in _record(rec, primary, shapes):
                outcomes.append(o)
                if o.status == "conflict":
                    conflicts.setdefault(rec.lsn, []).append(o.detail)
        except _Refused as exc:
            outcomes.append(Outcome(rec.lsn, str(exc.args[0]), "conflict", detail=exc.args[1]))
            conflicts.setdefault(rec.lsn, []).append(exc.args[1])
            break  # the primary refused a statement: this pass ends here
    return outcomes, conflicts


def _record(
    rec: KeptRecord, primary: Primary, shapes: dict[str, TableShape | None]
) -> list[Outcome]:
    if rec.kind == "MARKER":
        return [Outcome(rec.lsn, "marker (epoch start or canary)", "not needed")]
    if rec.kind == "CREATE_DB":
        return [Outcome(rec.lsn, f"create database {rec.database}", "in place")]
    if rec.kind != "CHANGES":
        why = (
            "the imported file is not in the diverged records: import it again with "
            "`litemirror db add --from`"
            if rec.kind == "IMPORT_DB"
            else f"a {rec.kind} record is not re-executed: do it by hand"
        )
        return [Outcome(rec.lsn, rec.kind, "conflict", detail=why)]
    if rec.database == SYSTEM_DB:
        return [
            Outcome(
                rec.lsn,
                "user changes",
                "conflict",
                detail="changes of users are not re-executed: redo them with `litemirror user`",
            )
        ]
    if not rec.ordered:
        return [
            Outcome(
                rec.lsn,
                "SQL and row changes",
                "conflict",
                detail="written by an older release that did not keep the order of its SQL "
                "and row changes: apply it by hand (`litemirror diverged show`)",
            )
        ]
    out: list[Outcome] = []
    for change in rec.changes():
        if isinstance(change, SqlChange):
            out.append(_sql(rec.lsn, change, primary))
            shapes.clear()  # the schema may have changed
        else:
            out.append(_row(rec.lsn, change, primary, shapes))
    return out


def _run(
    primary: Primary, what: str, sql: str, params: Sequence[Value]
) -> tuple[int, list[tuple[Any, ...]]]:
    try:
        return primary.execute(sql, params)
    except errors.Error as exc:
        if refused_by_primary(exc):
            raise _Refused(what, f"{what}: the primary refused it: {exc.message}") from None
        raise


def _sql(lsn: int, change: SqlChange, primary: Primary) -> Outcome:
    if change.is_sequence:
        return Outcome(
            lsn,
            "AUTOINCREMENT counters",
            "not needed",
            detail="the re-executed INSERTs move the counters themselves",
        )
    _run(primary, change.sql, change.sql, ())
    return Outcome(lsn, change.sql, "applied", sql=change.sql)


def _shape(primary: Primary, table: str, shapes: dict[str, TableShape | None]) -> TableShape | None:
    if table not in shapes:
        _, rows = _run(primary, f"table {table}", f"PRAGMA table_info({quote_ident(table)})", ())
        shapes[table] = TableShape.from_table_info(rows)
    return shapes[table]


def _row(
    lsn: int, change: RowChange, primary: Primary, shapes: dict[str, TableShape | None]
) -> Outcome:
    shape = _shape(primary, change.table, shapes)
    names = names_for(change, shape)
    if names is None:
        what = f"{change.table}: " + describe(change, numbered(change.width))
        why = (
            f"table {change.table} does not exist on the primary"
            if shape is None
            else f"table {change.table} has {len(shape.columns)} column(s) on the primary, "
            f"the record {record_columns(change, shape)}: its columns changed since"
        )
        return Outcome(lsn, what, "conflict", detail=f"{what}: {why}")
    what = f"{change.table}: " + describe(change, names)
    step = row_step(change, names)
    changed, _ = _run(primary, what, step.write, step.write_params)
    if changed == 1:
        return Outcome(lsn, what, "applied", sql=step.shown())
    _, done = _run(primary, what, step.done, step.done_params)
    if done:
        return Outcome(lsn, what, "in place", sql=step.shown())
    _, now = _run(primary, what, step.current, step.current_params)
    if not now:
        why = "no row has this key on the primary now"
    else:
        held = ", ".join(f"{n}={show_value(v)}" for n, v in zip(names, now[0], strict=False))
        why = f"the primary's row now holds {held}"
    return Outcome(lsn, what, "conflict", sql=step.shown(), detail=f"{what}: {why}")


# ------------------------------------------------------------------ reports


def counts_text(ops: dict[str, int]) -> str:
    """``{"insert": 2, "delete": 1}`` as "1 delete, 2 insert"."""
    return ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))


def plan_lines(
    kept: KeptFile,
    by_db: dict[str, list[KeptRecord]],
    primary: str,
    policy: Policy,
    warnings: list[str],
) -> list[str]:
    """What apply will do, shown before it asks."""
    lines = [f"{kept.name}: re-execute on the current primary ({primary}):"]
    for db, records in by_db.items():
        lines.append(f"  database {db}: {len(records)} record(s)")
        for table, ops in sorted(kept.summary.get(db, {}).items()):
            lines.append(f"    {table}: {counts_text(ops)}")
    lines.append(
        "conflicts: "
        + (
            "stop, nothing is applied anywhere (--on-conflict skip leaves out the "
            "records with conflicts instead)"
            if policy == "stop"
            else "a record with a conflict is left out whole; the others are applied"
        )
    )
    lines += [f"warning: {w}" for w in warnings]
    return lines


def conflict_lines(runs: list[DatabaseRun]) -> list[str]:
    return [
        f"  LSN {lsn} ({run.database}): {why}"
        for run in runs
        for lsn, whys in sorted(run.conflicts.items())
        for why in whys
    ]


_LABELS: dict[Status, str] = {
    "applied": "runs",
    "in place": "already in place",
    "not needed": "not needed",
    "conflict": "CONFLICT",
}


def dry_run_report(runs: list[DatabaseRun], policy: Policy) -> tuple[list[str], int]:
    """The lines ``--dry-run`` prints, and the exit status."""
    out = ["dry run: every statement ran on the primary and was rolled back; nothing changed"]
    for run in runs:
        for o in run.outcomes:
            out.append(f"LSN {o.lsn} {run.database}: {_LABELS[o.status]}: {o.what}")
            if o.sql:
                out.append(f"    {o.sql};")
    conflicts = conflict_lines(runs)
    if conflicts:
        verb = "would stop the apply" if policy == "stop" else "would be left out"
        return [*out, f"conflicts ({verb}):", *conflicts], 1
    return [*out, "no conflicts: apply would re-execute everything above"], 0


def report(
    runs: list[DatabaseRun], committed: dict[str, int], stopped: bool, primary: str
) -> tuple[list[str], int]:
    """The lines apply prints at the end, and the exit status."""
    conflicts = conflict_lines(runs)
    if stopped:
        return [
            "conflicts found; nothing was applied (policy: stop):",
            *conflicts,
            "fix those rows on the primary and apply again, or use --on-conflict skip",
        ], 1
    out = []
    for run in runs:
        lsns = run.applied_records()
        if run.database not in committed or not lsns:
            out.append(f"database {run.database}: nothing applied (every record left out)")
            continue
        at = f", committed there at LSN {committed[run.database]}" if run.count("applied") else ""
        out.append(
            f"database {run.database}: applied record(s) LSN {', '.join(map(str, lsns))} on "
            f"{primary}{at}: {run.count('applied')} change(s) re-executed, "
            f"{run.count('in place')} already in place, {run.count('not needed')} not needed"
        )
    if conflicts:
        return [*out, "left out (conflicts):", *conflicts], 1
    return [*out, "everything in the file was applied or already in place"], 0
