"""``litemirror diverged list|show|apply``: the records a rejoining member rolled back.

``list`` shows a member's kept files (``<data_dir>/diverged/``) with the time
of the rollback, the LSN range, the databases, tables and row counts.
``show FILE`` prints the changes as rows per table with their old and new
values, and the SQL of DDL; column names come from the member's own copy of
the database (opened read-only), else from the current primary, else the
columns are numbered. ``apply FILE`` re-executes the changes on the current
primary through the driver, after a confirmation (or ``--yes``), one
transaction per database, all committed only when every database ran
without conflict; ``--dry-run`` runs the same statements and rolls them
back. The conflict policy is in :mod:`.diverged_apply`; the file format and
the SQL in :mod:`.diverged_records`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apsw

from litemirror import errors
from litemirror.config import Config

from .diverged_apply import (
    POLICIES,
    SYSTEM_DB,
    DatabaseRun,
    Policy,
    counts_text,
    dry_run_report,
    plan_lines,
    report,
    run_database,
)
from .diverged_records import (
    KeptFile,
    TableShape,
    Value,
    parse_kept,
    show_lines,
)
from .users import login_option

# ------------------------------------------------------------------ finding files


def _config(args: argparse.Namespace) -> Config | None:
    from .context import load

    return load(args.config) if args.config else None


def _data_dir(args: argparse.Namespace, cfg: Config | None) -> Path | None:
    if args.data_dir:
        return Path(args.data_dir)
    if args.member:
        if cfg is None:
            raise errors.ConfigError("--member needs --config (or give --data-dir)")
        return cfg.member(args.member).data_dir
    return None


def _locate(file: str, data_dir: Path | None) -> Path:
    path = Path(file)
    if path.is_file():
        return path
    if data_dir is not None and path.name == file and (data_dir / "diverged" / file).is_file():
        return data_dir / "diverged" / file
    where = f" or in {data_dir / 'diverged'}" if data_dir is not None else ""
    raise errors.ConfigError(
        f"diverged file {file!r} not found{where}; `litemirror diverged list` shows the kept files"
    )


def _read(path: Path) -> KeptFile:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_kept(path.name, f)
    except OSError as exc:
        raise errors.ConfigError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise errors.DataError(f"{path.name} is not text: is it a diverged-records file?") from None


# ------------------------------------------------------------------ list


def cmd_list(args: argparse.Namespace) -> int:
    cfg = _config(args)
    data_dir = _data_dir(args, cfg)
    if data_dir is None:
        raise errors.ConfigError("diverged list: give --config and --member, or --data-dir")
    if not data_dir.is_dir():
        raise errors.ConfigError(f"{str(data_dir)!r} is not a directory (a member's data_dir)")
    kept: list[tuple[Path, KeptFile | str]] = []
    for p in sorted((data_dir / "diverged").glob("diverged-*.jsonl")):
        try:
            kept.append((p, _read(p)))
        except errors.DataError as exc:  # one damaged file does not hide the others
            kept.append((p, exc.message))
    if args.json:
        print(json.dumps([_summary(p, k) for p, k in kept], indent=2))
        return 0
    if not kept:
        print(f"no diverged records kept in {data_dir / 'diverged'}")
        return 0
    print(f"diverged records kept in {data_dir / 'diverged'}:")
    for p, k in kept:
        print()
        if isinstance(k, str):
            print(f"{p.name}\n  cannot be read: {k}")
            continue
        lsns = k.lsns
        print(k.name)
        print(
            f"  rolled back {k.rolled_back_at or '(time unknown)'}"
            + (f" after LSN {k.after_lsn}" if k.after_lsn is not None else "")
            + f": {len(k.records)} record(s)"
            + (f", LSN {lsns[0]}-{lsns[1]}" if lsns else "")
            + ("" if k.complete else " (the file has no report line: cut short?)")
        )
        if k.records:
            first, last = k.records[0].time, k.records[-1].time
            print(
                f"  committed {first} UTC"
                if first == last
                else f"  committed {first} to {last} UTC"
            )
        for db, tables in sorted(k.summary.items()):
            for t, ops in sorted(tables.items()):
                print(f"  {db}.{t}: {counts_text(ops)}")
    print()
    print("show one: litemirror diverged show FILE ...; re-apply: litemirror diverged apply FILE")
    return 0


def _summary(path: Path, k: KeptFile | str) -> dict[str, Any]:
    if isinstance(k, str):
        return {"file": path.name, "path": str(path), "error": k}
    lsns = k.lsns
    return {
        "file": k.name,
        "path": str(path),
        "rolled_back_at": k.rolled_back_at,
        "after_lsn": k.after_lsn,
        "first_lsn": lsns[0] if lsns else None,
        "last_lsn": lsns[1] if lsns else None,
        "records": len(k.records),
        "databases": k.databases,
        "tables": k.summary,
    }


# ------------------------------------------------------------------ show


class _LocalShapes:
    """Table shapes from the member's own database files, opened read-only."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "databases"
        self._conns: dict[str, apsw.Connection | None] = {}

    def __call__(self, db: str, table: str) -> TableShape | None:
        if db not in self._conns:
            path = self.dir / f"{db}.db"
            try:
                self._conns[db] = (
                    apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
                    if path.is_file()
                    else None
                )
            except apsw.Error:
                self._conns[db] = None
        conn = self._conns[db]
        if conn is None:
            return None
        try:
            return TableShape.from_table_info(
                conn.execute("SELECT * FROM pragma_table_info(?)", (table,)).fetchall()
            )
        except apsw.Error:
            return None

    def close(self) -> None:
        for conn in self._conns.values():
            if conn is not None:
                conn.close()


class _PrimaryShapes:
    """Table shapes read from the current primary (when the member's copy is not at hand)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._conns: dict[str, Any] = {}

    def __call__(self, db: str, table: str) -> TableShape | None:
        if db not in self._conns:
            try:
                self._conns[db] = connect(self.cfg, db)
            except errors.Error:
                self._conns[db] = None
        conn = self._conns[db]
        if conn is None:
            return None
        try:
            rows = conn.execute(f"PRAGMA table_info({_ident(table)})").fetchall()
        except errors.Error:
            return None
        return TableShape.from_table_info(rows)

    def close(self) -> None:
        for conn in self._conns.values():
            if conn is not None:
                conn.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def cmd_show(args: argparse.Namespace) -> int:
    cfg = _config(args)
    data_dir = _data_dir(args, cfg)
    path = _locate(args.file, data_dir)
    kept = _read(path)
    if data_dir is None and path.parent.name == "diverged":
        data_dir = path.parent.parent  # the member's data directory holds the file
    with ExitStack() as stack:
        local = _LocalShapes(data_dir) if data_dir is not None else None
        remote = _PrimaryShapes(cfg) if cfg is not None else None
        for s in (local, remote):
            if s is not None:
                stack.callback(s.close)

        def shapes(db: str, table: str) -> tuple[TableShape | None, str]:
            for source, label in ((local, "this member's copy"), (remote, "the primary")):
                shape = source(db, table) if source is not None else None
                if shape is not None:
                    return shape, label
            return None, ""

        for line in show_lines(kept, shapes):
            print(line)
    return 0


# ------------------------------------------------------------------ apply


def connect(cfg: Config, database: str) -> Any:
    """A driver connection to the current primary, logged in as the command line is."""
    import litemirror
    from litemirror.client.credentials import tls_from

    from .control import login

    hosts = ",".join(
        f"[{mb.host}]:{mb.port}" if ":" in mb.host else f"{mb.host}:{mb.port}" for mb in cfg.members
    )
    kw: dict[str, Any] = {}
    creds = login()
    if creds is not None:
        kw["user"], kw["password"] = creds
    tls = tls_from(cfg)
    if tls is not None:
        kw["tls_ca"] = tls.ca
        if tls.cert and tls.key:
            kw["tls_cert"], kw["tls_key"] = tls.cert, tls.key
    return litemirror.connect(
        f"litemirror://{hosts}/{quote(database, safe='')}", isolation_level=None, **kw
    )


class _DriverPrimary:
    """:class:`diverged_apply.Primary` over a driver connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.rollback()
            except errors.Error:
                pass  # the member already ended it: nothing of it stays

    def execute(self, sql: str, params: Sequence[Value]) -> tuple[int, list[tuple[Any, ...]]]:
        cur = self.conn.execute(sql, tuple(params))
        return cur.rowcount, [tuple(r) for r in cur.fetchall()]


class _Nothing:
    """The primary for records that never reach it (users, a missing database)."""

    def begin(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def execute(self, sql: str, params: Sequence[Value]) -> tuple[int, list[tuple[Any, ...]]]:
        raise errors.InternalError("diverged apply: no statement runs here")


def _missing(database: str, lsns: list[int], policy: Policy) -> DatabaseRun:
    why = (
        f"database {database} does not exist on the primary: add it with "
        f"`litemirror db add {database}` and apply again"
    )
    return DatabaseRun(database, conflicts={n: [why] for n in lsns}, stopped=policy == "stop")


def _confirm(args: argparse.Namespace, text: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise errors.ConfigError(
            "diverged apply asks for confirmation on a terminal; give --yes to apply without "
            "asking (or --dry-run to see what it would do); nothing was changed"
        )
    print(text)
    return input("re-execute these changes on the primary? type yes: ").strip() == "yes"


def cmd_apply(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg is None:
        raise errors.ConfigError("diverged apply needs --config (the mirror to apply to)")
    data_dir = _data_dir(args, cfg)
    path = _locate(args.file, data_dir)
    kept = _read(path)
    policy: Policy = args.on_conflict
    chosen = set(args.database or kept.databases)
    unknown = chosen - set(kept.databases)
    if unknown:
        raise errors.ConfigError(
            f"--database {', '.join(sorted(unknown))}: not in {kept.name} "
            f"(it holds {', '.join(kept.databases)})"
        )
    lsns = set(args.lsn or [r.lsn for r in kept.records])
    missing = lsns - {r.lsn for r in kept.records}
    if missing:
        raise errors.ConfigError(
            f"--lsn {', '.join(map(str, sorted(missing)))}: no such record in {kept.name}"
        )
    by_db = {
        db: [r for r in kept.records if r.database == db and r.lsn in lsns] for db in sorted(chosen)
    }
    by_db = {db: records for db, records in by_db.items() if records}
    with ExitStack() as stack:
        conns: dict[str, Any] = {}
        for db in by_db:
            if db == SYSTEM_DB:
                continue
            try:
                conns[db] = connect(cfg, db)
            except errors.ProgrammingError:
                continue  # no such database on the primary: its records conflict
            stack.callback(conns[db].close)
        primary = next((c.member for c in conns.values()), None) or "?"
        warnings = _trigger_warnings(conns, kept)
        plan = "\n".join(plan_lines(kept, by_db, primary, policy, warnings))
        if args.dry_run:
            print(plan)
        elif not _confirm(args, plan):
            print("nothing was changed")
            return 1
        runs: list[DatabaseRun] = []
        committed: dict[str, int] = {}
        stop = committing = False
        try:
            for db, records in by_db.items():
                if db == SYSTEM_DB:
                    runs.append(run_database(db, records, _Nothing(), policy))
                elif db not in conns:
                    runs.append(_missing(db, [r.lsn for r in records], policy))
                else:
                    runs.append(run_database(db, records, _DriverPrimary(conns[db]), policy))
            stop = any(r.stopped for r in runs)
            if args.dry_run or stop:
                for conn in conns.values():
                    _DriverPrimary(conn).rollback()
            else:
                committing = True
                committed = _commit_all(conns, runs)
        except BaseException:
            for conn in conns.values():
                _DriverPrimary(conn).rollback()
            if not committing:  # else the error says which databases were committed
                print("stopped by the error below; nothing was applied", file=sys.stderr)
            raise
    lines, code = (
        dry_run_report(runs, policy) if args.dry_run else report(runs, committed, stop, primary)
    )
    print("\n".join(lines))
    return code


def _trigger_warnings(conns: dict[str, Any], kept: KeptFile) -> list[str]:
    out = []
    for db, conn in conns.items():
        rows = conn.execute(
            "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1, 2"
        ).fetchall()
        touched = set(kept.summary.get(db, {}))
        for table, trigger in rows:
            if table in touched:
                out.append(
                    f"table {db}.{table} has trigger {trigger} on the primary: it fires again "
                    "for each re-executed change; the changes it made the first time are in "
                    "the file too (those it makes alike are found already in place)"
                )
    return out


def _commit_all(conns: dict[str, Any], runs: list[DatabaseRun]) -> dict[str, int]:
    """Commit each database's open transaction: database -> the primary's commit LSN."""
    done: dict[str, int] = {}
    for run in runs:
        conn = conns.get(run.database)
        if conn is None or not conn.in_transaction:
            continue
        try:
            conn.commit()
        except errors.Error as exc:
            left = [r.database for r in runs if r.database not in done and r.database in conns]
            raise type(exc)(
                f"committing database {run.database} failed ({exc.message}); already committed: "
                f"{', '.join(done) or 'none'}; not committed: {', '.join(left[1:]) or 'none'}"
            ) from exc
        done[run.database] = conn.last_lsn
    return done


# ------------------------------------------------------------------ parser


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "diverged", help="records a rejoining member rolled back: list, show, re-apply"
    ).add_subparsers(dest="divcmd", required=True)

    def where(s: argparse.ArgumentParser, config_required: bool = False) -> None:
        s.add_argument("--config", required=config_required)
        s.add_argument("--member", help="the member whose data_dir holds the files")
        s.add_argument("--data-dir", metavar="DIR", help="a member's data_dir (no --config)")

    s = d.add_parser("list", help="the kept files of a member: time, LSNs, tables, rows")
    where(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = d.add_parser("show", help="the changes of a kept file, as rows with old/new values")
    s.add_argument("file", metavar="FILE", help="a path, or a file name from `diverged list`")
    where(s)
    s.set_defaults(func=cmd_show)

    s = d.add_parser("apply", help="re-execute a kept file's changes on the current primary")
    s.add_argument("file", metavar="FILE", help="a path, or a file name from `diverged list`")
    where(s, config_required=True)
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="run every statement in transactions that are rolled back; print them and "
        "the conflicts",
    )
    s.add_argument(
        "--on-conflict",
        choices=POLICIES,
        default="stop",
        help="stop: apply nothing if any change conflicts (default); skip: leave out each "
        "record with a conflict, apply the others",
    )
    s.add_argument(
        "--database", action="append", metavar="NAME", help="only this database (repeatable)"
    )
    s.add_argument(
        "--lsn",
        action="append",
        type=int,
        metavar="N",
        help="only the record with this LSN (repeatable): e.g. those left out by an earlier run",
    )
    login_option(s)
    s.set_defaults(func=cmd_apply)
