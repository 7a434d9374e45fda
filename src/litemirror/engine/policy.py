"""What client SQL may do on the shared writer connection, and SQL text helpers.

``client_action`` is the authorizer's decision for a client statement, as a
pure function of SQLite's authorizer arguments: allow, re-run through the
DDL path (see :mod:`litemirror.engine.capture`), or refuse with an error.

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
from typing import Any, Final

import apsw

from litemirror.engine.meta import META_TABLE
from litemirror.errors import DatabaseError, NotSupportedError, ProgrammingError

#: Authorizer codes of main-schema DDL (the TEMP variants are separate codes).
DDL_CODES = frozenset(
    {
        apsw.SQLITE_CREATE_INDEX,
        apsw.SQLITE_CREATE_TABLE,
        apsw.SQLITE_CREATE_TRIGGER,
        apsw.SQLITE_CREATE_VIEW,
        apsw.SQLITE_CREATE_VTABLE,
        apsw.SQLITE_DROP_INDEX,
        apsw.SQLITE_DROP_TABLE,
        apsw.SQLITE_DROP_TRIGGER,
        apsw.SQLITE_DROP_VIEW,
        apsw.SQLITE_DROP_VTABLE,
        apsw.SQLITE_ALTER_TABLE,
        apsw.SQLITE_ANALYZE,
    }
)
#: CREATE codes -> sqlite_schema type, to record the object's stored SQL.
CREATED_TYPE = {
    apsw.SQLITE_CREATE_INDEX: "index",
    apsw.SQLITE_CREATE_TABLE: "table",
    apsw.SQLITE_CREATE_TRIGGER: "trigger",
    apsw.SQLITE_CREATE_VIEW: "view",
    apsw.SQLITE_CREATE_VTABLE: "table",
}
_WRITE_CODES = frozenset({apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema"})

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


class _Verdict:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The client statement may be prepared as is.
ALLOW: Final = _Verdict("ALLOW")
#: Stop the prepare: the statement must go through the DDL path.
RUN_AS_DDL: Final = _Verdict("RUN_AS_DDL")


def client_action(
    code: int, arg1: str | None, arg2: str | None, db: str | None
) -> _Verdict | DatabaseError:
    """Decide one authorizer action of a client statement (arguments as SQLite gives them)."""
    if code in DDL_CODES:
        schema = arg1 if code == apsw.SQLITE_ALTER_TABLE else db
        # TEMP objects are private to the writer connection: not replicated.
        return ALLOW if schema == "temp" else RUN_AS_DDL
    if code in _WRITE_CODES:
        if db == "temp" or arg1 is None:
            return ALLOW
        if arg1 in _SCHEMA_TABLES:
            return RUN_AS_DDL
        if arg1.startswith("sqlite_") or arg1 == META_TABLE:
            return NotSupportedError(
                f"writing to {arg1} directly is not supported through litemirror: "
                "SQLite and the mirror maintain it, and the backups must see the "
                "same values. Change the user tables instead."
            )
        return ALLOW
    if code == apsw.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in REPLICATED_PRAGMAS and arg2 is not None:
            return ALLOW if db == "temp" else RUN_AS_DDL
        return pragma_refusal(name, arg2) or ALLOW
    if code in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
        return transaction_refusal(arg1 or "transaction control")
    if code in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
        return attach_refusal("ATTACH" if code == apsw.SQLITE_ATTACH else "DETACH")
    return ALLOW


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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A value as SQL literal text, for ops that must be plain statements."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "NULL"
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def sequence_sql(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Statements that turn ``sqlite_sequence`` from ``before`` into ``after`` on a copy."""
    parts = []
    for name in sorted(before.keys() - after.keys()):
        parts.append(f"DELETE FROM sqlite_sequence WHERE name = {sql_literal(name)};")
    for name, seq in sorted(after.items()):
        if before.get(name) == seq:
            continue
        lit_name, lit_seq = sql_literal(name), sql_literal(seq)
        parts.append(
            f"INSERT INTO sqlite_sequence(name, seq) SELECT {lit_name}, {lit_seq} WHERE NOT "
            f"EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {lit_name});"
        )
        parts.append(f"UPDATE sqlite_sequence SET seq = {lit_seq} WHERE name = {lit_name};")
    return "\n".join(parts)
