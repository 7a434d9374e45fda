"""``litemirror shell URL``: an SQL prompt on a mirrored database.

Input is split into statements the way the sqlite3 command line does it: a
statement ends at a ``;`` that :func:`sqlite3.complete_statement` accepts (so
``;`` inside strings, comments and trigger bodies does not end it). A line
that starts with ``.`` while no statement is pending is a dot command.

Statements run in autocommit mode; BEGIN / COMMIT typed by the user still
work because the driver turns them into protocol messages. With a terminal
the shell prompts and keeps readline history in ``~/.litemirror_history``;
without one it runs the whole input and exits 1 if any statement failed.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from litemirror.client.dbapi import Connection, Cursor, connect
from litemirror.client.statements import is_dml, skip_leading
from litemirror.errors import Error

HISTORY = Path("~/.litemirror_history")
PROMPT = "litemirror> "
CONTINUE = "       ...> "
# SQLite's own objects and the member's bookkeeping table are not the user's schema.
_USER_OBJECTS = (
    "name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND tbl_name NOT LIKE '\\_litemirror%' ESCAPE '\\'"
)
HELP = """\
.tables            list tables and views
.schema [TABLE]    show CREATE statements (of one table and its indexes)
.help              show this text
.quit  .exit       leave the shell
SQL statements end with ';' and may span lines."""


class StatementSplitter:
    """Feed lines, get back complete statements and dot commands."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, line: str) -> Iterator[str]:
        if line.lstrip().startswith(".") and not _has_sql(self.pending):
            self.pending = ""
            yield line.strip()
            return
        self.pending += line if line.endswith("\n") else line + "\n"
        while True:
            statement = self._take_one()
            if statement is None:
                return
            if _has_sql(statement):
                yield statement

    def finish(self) -> str | None:
        """What is left at end of input, if it holds any SQL (run it like sqlite3 -bail off)."""
        rest, self.pending = self.pending, ""
        return rest.strip() if _has_sql(rest) else None

    def _take_one(self) -> str | None:
        start = 0
        while (end := self.pending.find(";", start)) >= 0:
            candidate = self.pending[: end + 1]
            if sqlite3.complete_statement(candidate):
                self.pending = self.pending[end + 1 :]
                return candidate.strip()
            start = end + 1
        return None


def _has_sql(text: str) -> bool:
    rest = text[skip_leading(text) :].strip()
    return bool(rest.strip(";").strip())


def _cell(value: object) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, bytes):
        return Text(f"X'{value.hex()}'")
    return Text(str(value))


class Shell:
    """Runs statements and dot commands on one connection and prints the outcome."""

    def __init__(self, conn: Connection, out: Console, err: Console) -> None:
        self.conn = conn
        self.out = out
        self.err = err
        self.failures = 0
        self.quit = False

    def handle(self, item: str) -> None:
        if item.startswith("."):
            self.dot(item)
        else:
            self.sql(item)

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> Cursor | None:
        try:
            cursor = self.conn.execute(statement, params)
        except Error as exc:
            self.fail(f"{exc}")
            return None
        if cursor.description is not None:
            self.show(cursor)
        elif cursor.rowcount >= 0 and is_dml(statement):
            noun = "row" if cursor.rowcount == 1 else "rows"
            self.out.print(f"{cursor.rowcount} {noun} changed")
        return cursor

    def show(self, cursor: Cursor) -> None:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in cursor.description or ():
            table.add_column(str(column[0]), overflow="fold")
        rows = cursor.fetchall()
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        self.out.print(table)
        noun = "row" if len(rows) == 1 else "rows"
        self.out.print(Text(f"({len(rows)} {noun})", style="dim"))

    def dot(self, command: str) -> None:
        name, _, arg = command.partition(" ")
        arg = arg.strip()
        if name in (".quit", ".exit", ".q"):
            self.quit = True
        elif name == ".help":
            self.out.print(Text(HELP))
        elif name == ".tables":
            cursor = self.quiet(
                f"SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
                f"AND {_USER_OBJECTS} ORDER BY name"
            )
            if cursor is not None:
                names = [row[0] for row in cursor.fetchall()]
                if names:
                    self.out.print(Text("  ".join(names)))
        elif name == ".schema":
            where = f"sql IS NOT NULL AND {_USER_OBJECTS}"
            params: tuple[object, ...] = ()
            if arg:
                where += " AND tbl_name = ?"
                params = (arg,)
            cursor = self.quiet(
                f"SELECT sql FROM sqlite_schema WHERE {where} ORDER BY tbl_name, type DESC, name",
                params,
            )
            if cursor is not None:
                for (sql,) in cursor.fetchall():
                    self.out.print(Text(f"{sql};"))
        else:
            self.fail(f"unknown command {name!r}; type .help for the list")

    def quiet(self, sql: str, params: tuple[object, ...] = ()) -> Cursor | None:
        try:
            return self.conn.execute(sql, params)
        except Error as exc:
            self.fail(str(exc))
            return None

    def fail(self, message: str) -> None:
        self.failures += 1
        self.err.print(Text(f"Error: {message}", style="bold red"))


def run_shell(url: str, *, stdin_is_tty: bool | None = None) -> int:
    """Run the shell on ``url``; return the process exit code."""
    interactive = sys.stdin.isatty() if stdin_is_tty is None else stdin_is_tty
    out = Console() if interactive else Console(width=max(Console().width, 160))
    err = Console(stderr=True)
    try:
        conn = connect(url, isolation_level=None)
    except Error as exc:
        err.print(Text(f"Error: cannot open {url}: {exc}", style="bold red"))
        return 1
    shell = Shell(conn, out, err)
    try:
        if interactive:
            out.print(Text(f"Connected to {conn.member} ({conn.role}). .help for help.", "dim"))
            _interactive(shell)
            return 0
        splitter = StatementSplitter()
        for line in sys.stdin.read().splitlines():
            for item in splitter.feed(line):
                shell.handle(item)
                if shell.quit:
                    return 1 if shell.failures else 0
        rest = splitter.finish()
        if rest is not None:
            shell.handle(rest)
        return 1 if shell.failures else 0
    finally:
        conn.close()


def _interactive(shell: Shell) -> None:
    history = _setup_history()
    splitter = StatementSplitter()
    try:
        while not shell.quit:
            try:
                line = input(CONTINUE if splitter.pending.strip() else PROMPT)
            except KeyboardInterrupt:
                splitter.pending = ""
                shell.out.print()
                continue
            except EOFError:
                shell.out.print()
                return
            for item in splitter.feed(line):
                try:
                    shell.handle(item)
                except KeyboardInterrupt:
                    shell.fail("interrupted")
                if shell.quit:
                    return
    finally:
        if history is not None:
            history()


def _setup_history() -> Callable[[], None] | None:
    """Load readline history; return a callable that saves it (None without readline)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - platforms without readline
        return None
    path = os.path.expanduser(str(HISTORY))
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    return save
