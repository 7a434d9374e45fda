"""Splitting SQL text into statements: sqlite3_complete's answers, in linear time.

The reference is the splitter this one replaced: ask SQLite's own
``sqlite3_complete`` (``apsw.complete``) at every ``;``. It is exact and
quadratic. The new one must give the same statements for every text, and
take time proportional to the text: issue 12 found a statement with many
``;`` inside one literal keeping a worker busy for seconds.
"""

from __future__ import annotations

import time

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litemirror.engine.sqltext import first_keyword, is_blank, split_statements


def reference_split(sql: str) -> tuple[str, ...]:
    """The quadratic splitter: sqlite3_complete asked at every ';'."""
    statements: list[str] = []
    start = 0
    pos = sql.find(";")
    while pos >= 0:
        chunk = sql[start : pos + 1]
        if apsw.complete(chunk):
            if not is_blank(chunk):
                statements.append(chunk.strip())
            start = pos + 1
        pos = sql.find(";", pos + 1)
    tail = sql[start:]
    if not is_blank(tail):
        statements.append(tail.strip())
    return tuple(statements)


CASES = [
    "",
    ";",
    " ; ;; ",
    "SELECT 1",
    "SELECT 1;",
    "SELECT 1; SELECT 2",
    "SELECT ';' ; SELECT 2;",
    "SELECT 'it''s;' ; x",
    'SELECT "a;b"; SELECT [c;d]; SELECT `e;f`;',
    "SELECT 1 -- c;\n; SELECT 2",
    "SELECT 1 /* c; */ ; SELECT 2 /* open ;",
    "SELECT 'open ; literal",
    "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END; SELECT 3;",
    "CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END ; SELECT 3",
    "create temporary trigger t after insert on x begin select 1;end;select 3",
    "EXPLAIN CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END; SELECT 3;",
    "EXPLAIN QUERY PLAN SELECT 1; SELECT 2;",
    "CREATE TABLE end(x); SELECT 1;",
    "CREATE x TRIGGER; SELECT 1;",
    "CREATE TRIGGER t BEGIN SELECT 'END;'; END; SELECT 2;",
    "CREATE TRIGGER t BEGIN SELECT 1; END x; END; SELECT 2;",
    "SELECT x$end; SELECT 1end; SELECT endx;",
    "SELECT 'é;'; SELECT ünicode; CREATE TRIGGER ü BEGIN SELECT 1; END;",
    "\ufeffSELECT 1;\x0bSELECT 2;",
]


@pytest.mark.parametrize("sql", CASES)
def test_same_statements_as_sqlite3_complete(sql: str) -> None:
    assert split_statements(sql) == reference_split(sql)


ATOMS = st.sampled_from(
    [";", " ", "\n", "\t", "'", '"', "`", "[", "]", "-", "--", "/*", "*/", "/", "*",
     "SELECT", "1", "x", "CREATE", "create", "TEMP", "temporary", "TRIGGER", "trigger",
     "END", "end", "EXPLAIN", "BEGIN", "$", "_", "é", "(", ")", ",", "\f", "\r", "\x0b"]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(ATOMS, max_size=40).map(lambda parts: "".join(parts)))
def test_generated_texts_split_as_sqlite3_complete_does(sql: str) -> None:
    assert split_statements(sql) == reference_split(sql)


@settings(max_examples=500, deadline=None)
@given(st.lists(ATOMS, max_size=40).map(lambda parts: " ".join(parts)))
def test_generated_spaced_texts_split_as_sqlite3_complete_does(sql: str) -> None:
    assert split_statements(sql) == reference_split(sql)


def _seconds(sql: str) -> float:
    t0 = time.perf_counter()
    split_statements(sql)
    return time.perf_counter() - t0


def test_many_semicolons_in_one_literal_take_linear_time() -> None:
    """The finding: 'a;;;...;' cost the square of its length. Doubling it now doubles the cost."""
    small = "SELECT '" + ";" * 100_000 + "'"
    big = "SELECT '" + ";" * 400_000 + "'"
    assert split_statements(big) == (big,)
    # Four times the text: a quadratic splitter takes sixteen times as long
    # (minutes here); a linear one about four. The bound leaves room for noise.
    ratio = min(_seconds(big) for _ in range(3)) / max(min(_seconds(small) for _ in range(3)), 1e-4)
    assert ratio < 10, ratio
    assert _seconds(big) < 2.0


def test_a_long_trigger_body_and_a_long_script_split_in_linear_time() -> None:
    body = "CREATE TRIGGER t AFTER INSERT ON x BEGIN " + "SELECT 1; " * 50_000 + "END;"
    script = "INSERT INTO x VALUES (1);" * 50_000
    assert split_statements(body + " SELECT 2;") == (body, "SELECT 2;")
    assert len(split_statements(script)) == 50_000
    assert _seconds(body) < 2.0 and _seconds(script) < 2.0


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("select 1", "SELECT"),
        ("  \n\t WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
        ("-- c\n/* d */ ; insert into t values (1)", "INSERT"),
        ("/* open", ""),
        ("", ""),
        ("123", ""),
        (" " * 1_000_000 + "VACUUM", "VACUUM"),
    ],
)
def test_first_keyword(sql: str, word: str) -> None:
    assert first_keyword(sql) == word
