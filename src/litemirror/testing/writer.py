"""A writer connection driven the way the member drives it, and a copy fed its records.

For component tests of :mod:`litemirror.engine`: each job runs inside the
group transaction in a savepoint of its own, is captured, and when the group
commits its ops become one record that is encoded, decoded and applied to a
second database with ``apply_record`` (as a backup does). ``content`` reads
a database the way the tests compare them: every table's rows with their
rowids, the schema and the header pragmas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw

from litemirror.engine import (
    META_TABLE,
    Capture,
    ExecResult,
    Where,
    apply_record,
    encode_ops,
    ensure_meta,
    open_apply_connection,
    write_lsn,
)
from litemirror.engine.capture import ScriptStopped
from litemirror.engine.ops import Op
from litemirror.errors import DatabaseError


class MemberWriter:
    """Database ``a.db`` written through capture; ``b.db`` applies every record."""

    def __init__(self, base: Path, *, foreign_keys: bool = False) -> None:
        self.conn = apsw.Connection(str(base / "a.db"))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA foreign_keys={int(foreign_keys)}")
        ensure_meta(self.conn)
        self.capture = Capture(self.conn)
        self.copy = open_apply_connection(str(base / "b.db"))
        self.lsn = 0
        self._ops: list[Op] = []

    # ------------------------------------------------------------- groups

    def open_group(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self._ops = []

    def commit_group(self) -> list[Op]:
        """Commit the group; apply its record to the copy. Returns its ops."""
        ops, self._ops = self._ops, []
        if ops:
            self.lsn += 1
            write_lsn(self.conn, self.lsn)
        self.conn.execute("COMMIT")
        if ops:
            assert apply_record(self.copy, self.lsn, encode_ops(ops))
        return ops

    # --------------------------------------------------------------- jobs

    def begin_job(self, where: Where) -> None:
        self.conn.execute("SAVEPOINT lm_job")
        self.capture.begin_job(where)

    def end_job(self) -> None:
        self._ops += self.capture.end_job()
        self.conn.execute("RELEASE lm_job")

    def abort_job(self) -> None:
        self.capture.abort_job()
        self.conn.execute("ROLLBACK TO lm_job; RELEASE lm_job")

    def job(self, where: Where, *statements: str | tuple[str, Any]) -> list[ExecResult]:
        """One job in the open group; on an error it is rolled back and the error raised."""
        self.begin_job(where)
        results = []
        try:
            for statement in statements:
                sql, params = statement if isinstance(statement, tuple) else (statement, None)
                results.append(self.capture.execute(sql, params))
            self.end_job()
        except BaseException:
            self.abort_job()
            raise
        return results

    def script(self, sql: str) -> DatabaseError | None:
        """executescript as one job in the open group; the error of a stopped script."""
        self.begin_job(Where.SCRIPT)
        stopped = None
        try:
            try:
                self.capture.executescript(sql)
            except ScriptStopped as exc:
                stopped = exc.error
            self.end_job()
        except BaseException:
            self.abort_job()
            raise
        return stopped

    def one(self, where: Where, *statements: str | tuple[str, Any]) -> list[Op]:
        """A group of one job (a script: the statements are its text), committed and applied."""
        self.open_group()
        try:
            if where is Where.SCRIPT:
                stopped = self.script("\n".join(str(s) for s in statements))
                if stopped is not None:
                    raise stopped
            else:
                self.job(where, *statements)
        finally:
            ops = self.commit_group()
        return ops

    def close(self) -> None:
        self.capture.close()
        self.conn.close()
        self.copy.close()


def _rowid_replicated(conn: apsw.Connection, quoted: str) -> bool:
    """Rowids are data where changesets key rows by them: no key, or INTEGER PRIMARY KEY.

    A rowid table with another primary key is keyed by that key; its hidden
    rowids differ between copies (as VACUUM may renumber them in SQLite).
    """
    kind = conn.execute(f'PRAGMA main.table_list("{quoted}")').fetchone()
    if kind is None or kind[4] or quoted.startswith("sqlite_"):  # [4]: WITHOUT ROWID
        return False
    keyed = [r for r in conn.execute(f'PRAGMA main.table_xinfo("{quoted}")') if r[5]]
    return not keyed or (len(keyed) == 1 and str(keyed[0][2]).upper() == "INTEGER")


def content(conn: apsw.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (with the rowid where it is replicated), the schema, user_version."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name != ? "
            "AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
            (META_TABLE,),
        )
    ]
    for name in tables:
        quoted = name.replace('"', '""')
        rowid = "rowid, " if _rowid_replicated(conn, quoted) else ""
        out[name] = sorted(conn.execute(f'SELECT {rowid}* FROM main."{quoted}"'), key=repr)
    out["(schema)"] = sorted(
        conn.execute(
            "SELECT type, name, sql FROM main.sqlite_schema WHERE name != ?", (META_TABLE,)
        ),
        key=repr,
    )
    out["(user_version)"] = [tuple(conn.execute("PRAGMA main.user_version").fetchone() or ())]
    return out
