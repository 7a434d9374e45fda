"""SQL text helpers: where one statement ends, its first keyword, blank text.

Theory of operation
-------------------
A statement ends at a ``;`` that SQLite's ``sqlite3_complete`` would call
complete: not inside a string, a quoted identifier or a comment, and not
inside the body of ``CREATE TRIGGER ... END``. Asking ``sqlite3_complete``
at every ``;`` (what this module replaced) costs the length of the text so
far each time: a script, or one literal, holding many ``;`` took quadratic
time on the member. :func:`split_statements` instead runs the same small
state machine once over the whole text, token by token, so its cost is
linear; where only a ``;`` can change the state (in the middle of an
ordinary statement, or of a trigger body) it jumps straight to the next
``;``, quote or comment with one regular-expression search.

The machine is ``sqlite3_complete``'s: tokens are ``;``, white space
(comments count as white space), the words EXPLAIN, CREATE, TEMP/TEMPORARY,
TRIGGER and END, and anything else. :data:`_NEXT` is its transition table;
a test compares the splitter with ``sqlite3_complete`` asked at every ``;``
over generated texts.
"""

from __future__ import annotations

import enum
import re
from functools import lru_cache


class _State(enum.IntEnum):
    INVALID = 0  # nothing but white space so far
    START = 1  # just after a complete statement
    NORMAL = 2  # inside an ordinary statement
    EXPLAIN = 3  # after EXPLAIN
    CREATE = 4  # after CREATE (and TEMP)
    TRIGGER = 5  # inside CREATE TRIGGER, before its END
    SEMI = 6  # after a ';' inside a trigger body
    END = 7  # after END at the end of a trigger body


class _Token(enum.IntEnum):
    SEMI = 0
    WS = 1
    OTHER = 2
    EXPLAIN = 3
    CREATE = 4
    TEMP = 5
    TRIGGER = 6
    END = 7


#: The next state, by state (rows, in _State order) and token (columns, in _Token order).
_NEXT: tuple[tuple[int, ...], ...] = (
    # SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END
    (1, 0, 2, 3, 4, 2, 2, 2),  # INVALID
    (1, 1, 2, 3, 4, 2, 2, 2),  # START
    (1, 2, 2, 2, 2, 2, 2, 2),  # NORMAL
    (1, 3, 3, 2, 4, 2, 2, 2),  # EXPLAIN
    (1, 4, 2, 2, 2, 4, 5, 2),  # CREATE
    (6, 5, 5, 5, 5, 5, 5, 5),  # TRIGGER
    (6, 6, 5, 5, 5, 5, 5, 7),  # SEMI
    (1, 7, 5, 5, 5, 5, 5, 5),  # END
)
_KEYWORDS = {
    "explain": _Token.EXPLAIN,
    "create": _Token.CREATE,
    "temp": _Token.TEMP,
    "temporary": _Token.TEMP,
    "trigger": _Token.TRIGGER,
    "end": _Token.END,
}
#: sqlite3_complete's white space (narrower than str.isspace).
_WS = re.compile(r"[ \t\n\r\f]+")
#: Characters SQLite allows in an identifier (every non-ASCII character too).
_WORD = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]+")
#: Where an ordinary statement or a trigger body can change state: a ';', or
#: something that may hide one (a quote, a bracket, a comment).
_INTERESTING = re.compile(r"[;'\"`\[]|--|/\*")
_CLOSE = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _token(sql: str, pos: int) -> tuple[_Token, int]:
    """The token at ``pos`` and where it ends; end -1 when it never ends (no ';' follows)."""
    ch = sql[pos]
    if ch == ";":
        return _Token.SEMI, pos + 1
    if ch in " \t\n\r\f":
        ws = _WS.match(sql, pos)
        assert ws is not None
        return _Token.WS, ws.end()
    if sql.startswith("/*", pos):
        end = sql.find("*/", pos + 2)
        return _Token.WS, (-1 if end < 0 else end + 2)
    if sql.startswith("--", pos):
        end = sql.find("\n", pos)
        return _Token.WS, (-1 if end < 0 else end + 1)
    close = _CLOSE.get(ch)
    if close is not None:
        end = sql.find(close, pos + 1)
        return _Token.OTHER, (-1 if end < 0 else end + 1)
    word = _WORD.match(sql, pos)
    if word is None:
        return _Token.OTHER, pos + 1
    return _KEYWORDS.get(word.group().lower(), _Token.OTHER), word.end()


def _ends(sql: str) -> list[int]:
    """Offsets just after each ';' that ends a statement, in one pass."""
    ends: list[int] = []
    state: int = _State.INVALID
    pos, n = 0, len(sql)
    while pos < n:
        if state == _State.NORMAL or state == _State.TRIGGER:
            # Only a ';' moves these states on: skip to one, or to what may hide one.
            found = _INTERESTING.search(sql, pos)
            if found is None:
                break
            pos = found.start()
        token, pos = _token(sql, pos)
        if pos < 0:
            break  # an open literal or comment runs to the end: no ';' after it counts
        state = _NEXT[state][token]
        if token is _Token.SEMI and state == _State.START:
            ends.append(pos)
    return ends


def _skip_blank(sql: str, pos: int) -> int:
    """Index of the first character at or after ``pos`` that is not space, comment or ';'."""
    n = len(sql)
    while pos < n:
        ch = sql[pos]
        if ch.isspace() or ch == ";":
            pos += 1
        elif sql.startswith("--", pos):
            end = sql.find("\n", pos)
            pos = n if end < 0 else end + 1
        elif sql.startswith("/*", pos):
            end = sql.find("*/", pos + 2)
            pos = n if end < 0 else end + 2
        else:
            return pos
    return n


def is_blank(sql: str) -> bool:
    """True if the text holds only whitespace, comments and semicolons."""
    return _skip_blank(sql, 0) == len(sql)


#: Blanks, comments and ';' (an open comment runs to the end), then a word of
#: letters and '_': what ``_skip_blank`` skips and the word after it.
_FIRST_WORD = re.compile(r"(?:\s|;|--[^\n]*|/\*.*?(?:\*/|\Z))*([^\W\d]*)", re.S)
_LETTERS = re.compile(r"[^\W\d]*")


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased ('' if there is none)."""
    # White space first with str.lstrip: the regular expression takes a
    # step per character, far slower on a text that opens with a lot of it.
    head = sql.lstrip()
    if head.startswith((";", "--", "/*")):
        match = _FIRST_WORD.match(head)
        return match.group(1).upper() if match else ""
    word = _LETTERS.match(head)
    return word.group().upper() if word else ""


def _split(sql: str) -> tuple[str, ...]:
    statements: list[str] = []
    start = 0
    for end in _ends(sql):
        chunk = sql[start:end]
        if not is_blank(chunk):
            statements.append(chunk.strip())
        start = end
    tail = sql[start:]
    if not is_blank(tail):
        statements.append(tail.strip())
    return tuple(statements)


_split_cached = lru_cache(maxsize=512)(_split)


def split_statements(sql: str) -> tuple[str, ...]:
    """Split SQL text into its non-blank statements (each keeps its own ';')."""
    # Repeated client statements are short; long scripts are not worth keeping.
    if len(sql) <= 4096:
        return _split_cached(sql)
    return _split(sql)
