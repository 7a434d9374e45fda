"""``litemirror.Row``: a row factory that behaves like :class:`sqlite3.Row`.

``sqlite3.Row`` cannot be used as is: it only accepts a :class:`sqlite3.Cursor`.
This class keeps its behaviour, point by point:

* ``row[i]`` by position (negative too) and ``row[a:b]`` (a tuple);
  ``row["name"]`` by column name, ASCII letters compared without case,
  the first matching column winning; ``IndexError`` otherwise;
* ``len(row)``, iteration over the values, ``keys()`` (the column names);
* equal when the descriptions and the values are equal; hashable; no order;
* a ``collections.abc.Sequence``.

A connection whose ``row_factory`` is ``sqlite3.Row`` makes rows of this class.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class _Described(Protocol):
    @property
    def description(self) -> tuple[tuple[Any, ...], ...] | None: ...


class Row:
    """A result row addressable by position and by column name."""

    __slots__ = ("_description", "_values")

    def __init__(self, cursor: _Described, data: tuple[Any, ...]) -> None:
        if not isinstance(data, tuple):
            raise TypeError(f"Row() argument 2 must be tuple, not {type(data).__name__}")
        self._description: tuple[tuple[Any, ...], ...] = cursor.description or ()
        self._values = data

    def keys(self) -> list[str]:
        """The column names, in order."""
        return [column[0] for column in self._description]

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, int):
            return self._values[key]
        if isinstance(key, str):
            wanted = key.translate(_FOLD)
            for column, value in zip(self._description, self._values, strict=False):
                if str(column[0]).translate(_FOLD) == wanted:
                    return value
            raise IndexError("No item with that key")
        if isinstance(key, slice):
            return self._values[key]
        raise IndexError("Index must be int or string")

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return self._description == other._description and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._description) ^ hash(self._values)


Sequence.register(Row)
