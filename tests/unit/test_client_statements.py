"""Statement classification and parameter adaptation, checked against sqlite3 itself."""

from __future__ import annotations

import datetime
import sqlite3

import pytest

from litemirror.client.statements import adapt_params, is_dml, transaction_verb
from litemirror.errors import ProgrammingError

VERBS = [
    ("BEGIN", "begin"),
    ("begin;", "begin"),
    ("  -- why\n BEGIN IMMEDIATE TRANSACTION ; ", "begin"),
    ("/* c */BEGIN EXCLUSIVE", "begin"),
    ("begin deferred transaction t1", "begin"),
    ("COMMIT", "commit"),
    ("end transaction", "commit"),
    ("END", "commit"),
    ("ROLLBACK", "rollback"),
    ("rollback transaction;", "rollback"),
    ("ROLLBACK TO sp1", None),
    ("ROLLBACK TRANSACTION TO SAVEPOINT sp1", None),
    ("SAVEPOINT sp1", None),
    ("RELEASE sp1", None),
    ("SELECT 'BEGIN'", None),
    ("BEGINX", None),
    ("COMMIT; SELECT 1", None),
    ("", None),
]


@pytest.mark.parametrize(("sql", "verb"), VERBS)
def test_transaction_verb(sql: str, verb: str | None) -> None:
    assert transaction_verb(sql) == verb


DML_SAMPLES = [
    "INSERT INTO t VALUES (1)",
    "  insert into t values (1)",
    "-- c\nUPDATE t SET a = 1",
    "/* x */ delete from t",
    "REPLACE INTO t VALUES (1)",
    "SELECT 1",
    "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
    "CREATE TABLE u (a)",
    "",
]


@pytest.mark.parametrize("sql", DML_SAMPLES)
def test_is_dml_matches_sqlite3_implicit_begin(sql: str) -> None:
    """sqlite3 opens a transaction before exactly the statements is_dml() accepts."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a)")
    conn.execute(sql)
    assert is_dml(sql) == conn.in_transaction
    conn.close()


def test_adapt_params() -> None:
    assert adapt_params(None) is None
    assert adapt_params(()) == []
    assert adapt_params((1, True, 2.5, "s", b"b", bytearray(b"x"), memoryview(b"y"), None)) == [
        1,
        1,
        2.5,
        "s",
        b"b",
        b"x",
        b"y",
        None,
    ]
    assert adapt_params({"a": 1}) == {"a": 1}
    assert adapt_params([datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4)]) == [
        "2024-01-02",
        "2024-01-02 03:04:00",
    ]
    assert adapt_params([2**63 - 1, -(2**63)]) == [2**63 - 1, -(2**63)]


def test_adapt_params_errors_like_sqlite3() -> None:
    with pytest.raises(OverflowError):
        adapt_params([2**63])
    with pytest.raises(OverflowError):
        adapt_params([-(2**63) - 1])
    with pytest.raises(ProgrammingError, match="parameter 2: type 'object'"):
        adapt_params([1, object()])
    with pytest.raises(ProgrammingError, match="unsupported type int"):
        adapt_params(5)
    with pytest.raises(ProgrammingError, match="unsupported type str"):
        adapt_params("abc")
