"""What client SQL may do on the shared writer connection, and SQL text helpers.

The writer connection is shared by every client of a database and all of its
work must be replayable on the backups. So some statements are refused
outright (with the reason in the message), and pragmas are split into
three groups: the two header values that are replicated as statements, the
read-only ones (also when they take an argument such as a table name), and
everything else, which would change the shared connection or the file.

The text helpers split a script into statements with ``sqlite3_complete``
(which knows about quotes, comments and ``CREATE TRIGGER ... END``) and read
a statement's first keyword, which is all the classification that cannot be
done by the authorizer (VACUUM has no authorizer action code).
"""

from __future__ import annotations

from functools import lru_cache

import apsw

from litemirror.errors import DatabaseError, NotSupportedError, ProgrammingError

#: Pragmas whose new value is replicated, as ``PRAGMA name = value``.
REPLICATED_PRAGMAS = frozenset({"user_version", "application_id"})

#: Pragmas that only read, even when given an argument (a table, index or limit).
READ_PRAGMAS_WITH_ARGUMENT = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_info",
        "index_xinfo",
        "index_list",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)

#: Pragmas that act even without a value: checkpoint, free pages, optimize.
ACTING_PRAGMAS = frozenset({"wal_checkpoint", "incremental_vacuum", "optimize", "shrink_memory"})

#: First keywords of transaction control statements.
TRANSACTION_KEYWORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})

#: First keywords counted by ``rowcount``, as :mod:`sqlite3` does.
DML_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


def pragma_refusal(name: str, value: str | None) -> DatabaseError | None:
    """Return the error for a pragma the client may not run, or None if it may."""
    if value is None and name not in ACTING_PRAGMAS:
        return None
    if value is not None and (name in READ_PRAGMAS_WITH_ARGUMENT or name in REPLICATED_PRAGMAS):
        return None
    return NotSupportedError(
        f"PRAGMA {name} is not supported through litemirror: it would change the writer "
        "connection shared by all clients or the database file itself, and it cannot be "
        "replayed on the backups. The mirror manages journal mode, synchronous, "
        "checkpoints and foreign keys; read the value without '=' instead."
    )


def transaction_refusal(verb: str) -> ProgrammingError:
    return ProgrammingError(
        f"{verb} cannot be used as SQL through litemirror: transactions are controlled "
        "by the driver (connection.commit() / connection.rollback()), because each "
        "client transaction is a savepoint inside the member's group commit."
    )


def keyword_refusal(keyword: str) -> DatabaseError | None:
    """Refusals decided by the first keyword, before anything is prepared."""
    if keyword in TRANSACTION_KEYWORDS:
        return transaction_refusal(keyword)
    if keyword == "VACUUM":
        return NotSupportedError(
            "VACUUM is not supported through litemirror: it rewrites the whole file, "
            "cannot run inside the group-commit transaction, and renumbers rowids "
            "that the backups replicate by. Compact the database offline instead."
        )
    if keyword in ("ATTACH", "DETACH"):
        return attach_refusal(keyword)
    return None


def attach_refusal(verb: str) -> NotSupportedError:
    return NotSupportedError(
        f"{verb} is not supported through litemirror: an attached file is not mirrored, "
        "and attaching would change the writer connection shared by all clients. "
        "Put the tables in the mirrored database instead."
    )


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


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased ('' if there is none)."""
    start = _skip_blank(sql, 0)
    end = start
    while end < len(sql) and (sql[end].isalpha() or sql[end] == "_"):
        end += 1
    return sql[start:end].upper()


def _split(sql: str) -> tuple[str, ...]:
    statements: list[str] = []
    start = 0
    pos = sql.find(";")
    while pos >= 0:
        chunk = sql[start : pos + 1]
        # sqlite3_complete is false while the ';' is inside a literal, a comment
        # or a trigger body, so only real statement ends cut here.
        if apsw.complete(chunk):
            if not is_blank(chunk):
                statements.append(chunk.strip())
            start = pos + 1
        pos = sql.find(";", pos + 1)
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
