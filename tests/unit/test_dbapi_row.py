"""litemirror.Row side by side with sqlite3.Row: same answers, same errors, for the same row."""

from __future__ import annotations

import collections.abc
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import litemirror

SQL = "SELECT 1 AS a, 'two' AS B, NULL AS \"Été\", x'00' AS a"


class Described:
    """What litemirror.Row reads from a cursor: its description (here sqlite3's)."""

    def __init__(self, description: Any) -> None:
        self.description = description


@pytest.fixture
def pair() -> Iterator[tuple[Any, Any]]:
    """The same row as a sqlite3.Row and as a litemirror.Row."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    cur = conn.execute(SQL)
    theirs = cur.fetchone()
    ours = litemirror.Row(Described(cur.description), tuple(theirs))
    yield theirs, ours
    conn.close()


def _outcome(action: Callable[[Any], Any], row: Any) -> tuple[str, Any]:
    try:
        return ("ok", action(row))
    except Exception as exc:  # the class and message are what we compare
        return (type(exc).__name__, str(exc))


ACTIONS: list[tuple[str, Callable[[Any], Any]]] = [
    ("index 0", lambda r: r[0]),
    ("index -1", lambda r: r[-1]),
    ("index True", lambda r: r[True]),
    ("index out of range", lambda r: r[4]),
    ("index -5", lambda r: r[-5]),
    ("slice", lambda r: r[1:3]),
    ("slice step", lambda r: r[::-2]),
    ("name", lambda r: r["a"]),
    ("name other case", lambda r: r["b"]),
    ("name upper", lambda r: r["A"]),
    ("non-ASCII name, same case", lambda r: r["Été"]),
    ("non-ASCII name, other case", lambda r: r["éTÉ"]),
    ("missing name", lambda r: r["zz"]),
    ("float index", lambda r: r[1.0]),
    ("None index", lambda r: r[None]),
    ("len", len),
    ("list", list),
    ("tuple", tuple),
    ("keys", lambda r: r.keys()),
    ("contains", lambda r: "two" in r),
    ("reversed", lambda r: list(reversed(r))),
    ("is a Sequence", lambda r: isinstance(r, collections.abc.Sequence)),
    ("order", lambda r: r < r),
    ("set item", lambda r: r.__setitem__(0, 5)),
]


@pytest.mark.parametrize(("what", "action"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_same_as_sqlite3_row(
    pair: tuple[Any, Any], what: str, action: Callable[[Any], Any]
) -> None:
    theirs, ours = pair
    expected, got = _outcome(action, theirs), _outcome(action, ours)
    if expected[0] != "ok":
        # The same exception and message; Python names the class by its short name.
        expected = (expected[0], expected[1].replace("sqlite3.Row", "Row"))
    assert got == expected, what


def test_equality_and_hash() -> None:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    c1 = conn.execute("SELECT 1 AS a, 2 AS b")
    c2 = conn.execute("SELECT 1 AS a, 2 AS c")
    c3 = conn.execute("SELECT 1 AS a, 3 AS b")
    rows = {"x": c1, "other names": c2, "other values": c3}
    theirs = {k: c.fetchone() for k, c in rows.items()}
    ours = {k: litemirror.Row(Described(c.description), tuple(theirs[k])) for k, c in rows.items()}
    same = litemirror.Row(Described(c1.description), (1, 2))
    for k in rows:
        assert (ours["x"] == ours[k]) is (theirs["x"] == theirs[k])
        assert (ours["x"] != ours[k]) is (theirs["x"] != theirs[k])
    assert ours["x"] == same and hash(ours["x"]) == hash(same)
    assert len({ours["x"], same, ours["other values"]}) == 2
    # A Row is not equal to a tuple of its values (as in sqlite3).
    assert (ours["x"] == (1, 2)) is (theirs["x"] == (1, 2)) is False
    conn.close()


def test_data_must_be_a_tuple() -> None:
    with pytest.raises(TypeError, match="must be tuple"):
        litemirror.Row(Described(()), [1])  # type: ignore[arg-type]
