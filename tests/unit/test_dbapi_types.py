"""PEP 249 constructors and type objects: sqlite3's constructors, SQLite's affinity groups."""

from __future__ import annotations

import sqlite3

import pytest

import litemirror
from litemirror.client.statements import adapt_value
from litemirror.client.types import TypeGroup, type_group

CONSTRUCTORS = ["Binary", "Date", "Time", "Timestamp"]
TICKS = ["DateFromTicks", "TimeFromTicks", "TimestampFromTicks"]


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_constructors_are_sqlite3s(name: str) -> None:
    assert getattr(litemirror, name) is getattr(sqlite3, name)


@pytest.mark.parametrize("name", TICKS)
@pytest.mark.parametrize("ticks", [0, 1_700_000_000, 1_700_000_000.75, 951_782_400])
def test_from_ticks_match_sqlite3(name: str, ticks: float) -> None:
    assert getattr(litemirror, name)(ticks) == getattr(sqlite3, name)(ticks)


def test_constructed_values_bind_as_sqlite3_binds_them() -> None:
    # sqlite3's default adapters: date/datetime as ISO text, memoryview as a BLOB.
    assert adapt_value(litemirror.Binary(b"\x00\x01"), 1) == b"\x00\x01"
    assert adapt_value(litemirror.Date(2024, 2, 29), 1) == "2024-02-29"
    assert adapt_value(litemirror.Timestamp(2024, 2, 29, 13, 5, 7), 1) == "2024-02-29 13:05:07"


GROUPS: list[tuple[str | None, TypeGroup | None]] = [
    # declared type -> group (SQLite's affinity rules; date/time names first)
    ("INTEGER", TypeGroup.NUMBER),
    ("int", TypeGroup.NUMBER),
    ("BIGINT", TypeGroup.NUMBER),
    ("UNSIGNED BIG INT", TypeGroup.NUMBER),
    ("POINT", TypeGroup.NUMBER),  # "INT" inside: INTEGER affinity, as in SQLite
    ("REAL", TypeGroup.NUMBER),
    ("DOUBLE PRECISION", TypeGroup.NUMBER),
    ("FLOAT", TypeGroup.NUMBER),
    ("NUMERIC", TypeGroup.NUMBER),
    ("DECIMAL(10,5)", TypeGroup.NUMBER),
    ("BOOLEAN", TypeGroup.NUMBER),
    ("TEXT", TypeGroup.STRING),
    ("VARCHAR(255)", TypeGroup.STRING),
    ("NATIVE CHARACTER(70)", TypeGroup.STRING),
    ("CLOB", TypeGroup.STRING),
    ("CHARINT", TypeGroup.NUMBER),  # SQLite checks "INT" before "CHAR"
    ("BLOB", TypeGroup.BINARY),
    ("", TypeGroup.BINARY),  # declared without a type
    ("DATE", TypeGroup.DATETIME),
    ("datetime", TypeGroup.DATETIME),
    ("TIMESTAMP", TypeGroup.DATETIME),
    ("TIME", TypeGroup.DATETIME),
    ("DATE_OF_BIRTH", TypeGroup.NUMBER),  # not a date word: NUMERIC affinity
    (None, None),  # an expression has no declared type
]


@pytest.mark.parametrize(("decltype", "group"), GROUPS)
def test_type_group(decltype: str | None, group: TypeGroup | None) -> None:
    assert type_group(decltype) is group


TYPE_OBJECTS = {
    TypeGroup.STRING: litemirror.STRING,
    TypeGroup.BINARY: litemirror.BINARY,
    TypeGroup.NUMBER: litemirror.NUMBER,
    TypeGroup.DATETIME: litemirror.DATETIME,
    TypeGroup.ROWID: litemirror.ROWID,
}


@pytest.mark.parametrize(("decltype", "group"), GROUPS)
def test_type_objects_compare_equal_to_their_type_codes(
    decltype: str | None, group: TypeGroup | None
) -> None:
    for each, obj in TYPE_OBJECTS.items():
        assert (decltype == obj) is (each is group)
        assert (obj == decltype) is (each is group)
        assert (obj != decltype) is (each is not group)


def test_type_objects_are_distinct_and_hashable() -> None:
    objs = list(TYPE_OBJECTS.values())
    assert len(set(objs)) == 5
    assert all(a == b for a, b in zip(objs, objs, strict=True))
    assert litemirror.STRING != litemirror.NUMBER
    assert litemirror.NUMBER != 1
    assert litemirror.NUMBER.__eq__(object()) is NotImplemented
    assert repr(litemirror.STRING) == "litemirror.STRING"
