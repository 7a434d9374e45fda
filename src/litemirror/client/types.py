"""PEP 249 type constructors and type objects.

The constructors are those of :mod:`sqlite3` (``Binary`` is ``memoryview``,
``Date`` is ``datetime.date``, ...), so values built with either module bind
the same way.

A cursor's ``description`` gives, as each column's ``type_code``, the type
the column was declared with (``"INTEGER"``, ``"VARCHAR(20)"``; None for an
expression or a column declared without a type, for which SQLite reports
none), and the type objects compare equal to the declared types that belong
to them. The groups follow SQLite's own type affinity rules
(https://sqlite.org/datatype3.html#determination_of_column_affinity), with
the date and time names that :mod:`sqlite3`'s converters know taken first:

==========  ==============================================================
DATETIME    DATE, DATETIME, TIME, TIMESTAMP (the first word of the type)
NUMBER      INTEGER affinity (contains "INT"), REAL affinity (contains
            "REAL", "FLOA", "DOUB") and NUMERIC affinity (everything else)
STRING      TEXT affinity: contains "CHAR", "CLOB" or "TEXT"
BINARY      BLOB affinity: contains "BLOB", or declared without a type
ROWID       nothing: SQLite does not tell a rowid column by its type
==========  ==============================================================
"""

from __future__ import annotations

import datetime
import enum
import time

Binary = memoryview
Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime


def DateFromTicks(ticks: float) -> datetime.date:
    """The local date at ``ticks`` seconds since the epoch."""
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:
    """The local time of day at ``ticks`` seconds since the epoch."""
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:
    """The local date and time at ``ticks`` seconds since the epoch."""
    return Timestamp(*time.localtime(ticks)[:6])


class TypeGroup(enum.Enum):
    """What a declared column type holds, by SQLite's affinity rules."""

    STRING = "STRING"
    BINARY = "BINARY"
    NUMBER = "NUMBER"
    DATETIME = "DATETIME"
    ROWID = "ROWID"


_DATETIME_WORDS = frozenset({"DATE", "DATETIME", "TIME", "TIMESTAMP"})


def type_group(decltype: str | None) -> TypeGroup | None:
    """The group of a declared type; None for an expression (no declared type)."""
    if decltype is None:
        return None
    upper = decltype.upper()
    words = upper.replace("(", " ").split()
    if words and words[0] in _DATETIME_WORDS:
        return TypeGroup.DATETIME
    # SQLite's rules, in SQLite's order (https://sqlite.org/datatype3.html, 3.1).
    if "INT" in upper:
        return TypeGroup.NUMBER
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return TypeGroup.STRING
    if "BLOB" in upper or not upper.strip():
        return TypeGroup.BINARY
    return TypeGroup.NUMBER


class DBAPITypeObject:
    """A PEP 249 type object: equal to the declared types of its group."""

    __slots__ = ("group",)

    def __init__(self, group: TypeGroup) -> None:
        self.group = group

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return self.group is other.group
        if isinstance(other, str):
            return type_group(other) is self.group
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.group)

    def __repr__(self) -> str:
        return f"litemirror.{self.group.value}"


STRING = DBAPITypeObject(TypeGroup.STRING)
BINARY = DBAPITypeObject(TypeGroup.BINARY)
NUMBER = DBAPITypeObject(TypeGroup.NUMBER)
DATETIME = DBAPITypeObject(TypeGroup.DATETIME)
ROWID = DBAPITypeObject(TypeGroup.ROWID)
