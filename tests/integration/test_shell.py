"""``litemirror shell URL`` with piped input against a real member."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import litemirror

LITEMIRROR = str(Path(sys.executable).with_name("litemirror"))


def shell(url: str, script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    return subprocess.run(
        [LITEMIRROR, "shell", url],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_statements_tables_and_changes(member: Any) -> None:
    done = shell(
        member.url(),
        """
        CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT, note TEXT,
                            img BLOB);
        INSERT INTO fruit (name, note, img) VALUES ('apple', NULL, x'cafe'),
                                                   ('pear; ripe', 'semi;colon', NULL);
        UPDATE fruit SET note = 'x' -- a comment; not the end
          WHERE id = 1;
        SELECT id, name, note, img FROM fruit ORDER BY id;
        .tables
        .schema fruit
        """,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2 rows changed" in out
    assert "1 row changed" in out
    for text in ("id", "name", "note", "apple", "pear; ripe", "NULL", "X'cafe'", "(2 rows)"):
        assert text in out, text
    assert "fruit" in out.split("(2 rows)")[1]
    assert "CREATE TABLE fruit" in out
    assert "_litemirror" not in out  # the member's bookkeeping table is not the user's
    check = litemirror.connect(member.url())
    try:
        assert check.execute("SELECT note FROM fruit ORDER BY id").fetchall() == [
            ("x",),
            ("semi;colon",),
        ]
    finally:
        check.close()


def test_failure_sets_exit_code_and_continues(member: Any) -> None:
    done = shell(
        member.url(),
        "CREATE TABLE t (x UNIQUE);\n"
        "INSERT INTO t VALUES (1);\n"
        "INSERT INTO t VALUES (1);\n"
        "SELECT * FROM nowhere;\n"
        "SELECT count(*) AS n FROM t;\n",
    )
    assert done.returncode == 1
    assert "UNIQUE constraint failed" in done.stderr
    assert "no such table: nowhere" in done.stderr
    assert "(1 row)" in done.stdout


def test_user_transactions_work_in_the_shell(member: Any) -> None:
    done = shell(
        member.url(),
        "CREATE TABLE t (x);\n"
        "BEGIN;\nINSERT INTO t VALUES (1);\nROLLBACK;\n"
        "BEGIN;\nINSERT INTO t VALUES (2);\nCOMMIT;\n"
        "SELECT group_concat(x) AS xs FROM t;\n"
        ".quit\n"
        "SELECT 'not reached';\n",
    )
    assert done.returncode == 0, done.stderr
    assert "xs" in done.stdout
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert "2" in lines and "1" not in lines
    assert "not reached" not in done.stdout


def test_unreachable_member_fails_cleanly(member: Any) -> None:
    url = member.url(connect_timeout=0.5)
    member.kill()
    done = shell(url, "SELECT 1;\n")
    assert done.returncode != 0
    assert "Error" in done.stderr
    assert "Traceback" not in done.stderr
