"""The refusal table: docs/sql.md shows it exactly, and every example is refused as it says.

Each example runs through capture where the table says (a statement
outside a transaction, inside one, or in a script) on a database holding
some data; it must fail with the row's error class and reason, and change
nothing: the same rows, no ops, no TEMP object left behind. Statements
outside a transaction are also refused by their first keyword where the
session checks that before trying a reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from litemirror.engine import Where, policy, refusals
from litemirror.errors import DatabaseError
from litemirror.testing.writer import MemberWriter, content

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
START, END = "<!-- refusals: start -->\n", "<!-- refusals: end -->"

EXAMPLES = [(row, ex) for row in refusals.TABLE for ex in row.examples]


def test_docs_show_the_table_the_code_uses() -> None:
    text = DOCS.read_text()
    assert START in text and END in text, f"{DOCS} lost its refusal table markers"
    shown = text.split(START, 1)[1].split(END, 1)[0]
    assert shown == refusals.markdown_table(), (
        "docs/sql.md differs from engine/refusals.py; paste refusals.markdown_table() "
        "between the markers"
    )


def test_every_row_has_examples_and_a_distinct_key() -> None:
    assert len({r.key for r in refusals.TABLE}) == len(refusals.TABLE)
    for row in refusals.TABLE:
        assert row.examples, row.key
        assert {ex.where for ex in row.examples} <= {"statement", "transaction", "script"}


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemberWriter]:
    m = MemberWriter(tmp_path_factory.mktemp("refusals"))
    m.one(
        Where.SCRIPT,
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v);",
        "CREATE INDEX t_v ON t(v); INSERT INTO t(v) VALUES (1), (2), (3); ANALYZE;",
    )
    yield m
    m.close()


@pytest.mark.parametrize(
    ("row", "example"), EXAMPLES, ids=[f"{r.key}:{e.where}:{e.sql}" for r, e in EXAMPLES]
)
def test_example_is_refused_and_changes_nothing(
    member: MemberWriter, row: refusals.Refusal, example: refusals.Example
) -> None:
    before = content(member.conn)
    member.open_group()
    error: DatabaseError | None = None
    try:
        if example.where == "script":
            try:
                error = member.script(example.sql)
            except DatabaseError as exc:
                error = exc
        else:
            where = Where.STATEMENT if example.where == "statement" else Where.TRANSACTION
            with pytest.raises(DatabaseError) as info:
                member.job(where, example.sql)
            error = info.value
    finally:
        ops = member.commit_group()
    assert error is not None, "not refused"
    assert type(error) is row.error, error.message
    assert error.message.endswith(row.reason), error.message
    assert ops == []
    assert content(member.conn) == before
    assert list(member.conn.execute("SELECT name FROM temp.sqlite_schema")) == []


@pytest.mark.parametrize(
    ("row", "example"),
    [(r, e) for r, e in EXAMPLES if e.where == "statement"],
    ids=[e.sql for r, e in EXAMPLES if e.where == "statement"],
)
def test_keyword_refusals_agree_with_the_table(
    row: refusals.Refusal, example: refusals.Example
) -> None:
    # The session refuses these first keywords before a reader sees them.
    refused = policy.keyword_refusal(policy.first_keyword(example.sql))
    if refused is not None:
        assert type(refused) is row.error
        assert refused.message.endswith(row.reason)


def test_reasons_are_sentences() -> None:
    # The message reads "<what> is refused by litemirror: <reason>".
    for row in refusals.TABLE:
        assert not re.search(r"\s{2,}", row.reason), row.key
        assert row.reason.endswith("."), row.key
