"""Every statement a member refuses, why, and what to run instead: one table.

The member runs client SQL on one writer connection shared by every session
of a database, inside its group-commit transaction, and the backups replay
only what reaches the journal. Each row below is a kind of statement that
cannot keep those promises. The error a client gets is built from its row
(:func:`refuse`), ``docs/sql.md`` shows the table rendered by
:func:`markdown_table`, and ``tests/unit/test_capture_refusals.py`` checks
both directions — the document against this table, and every example
against the running code — so the three cannot drift apart.

An example's ``where`` says how the test sends it: ``statement`` (a one-shot
statement outside a transaction), ``transaction`` (inside an interactive
transaction) or ``script`` (in ``executescript``).
"""

from __future__ import annotations

from dataclasses import dataclass

from litemirror.errors import DatabaseError, NotSupportedError, OperationalError, ProgrammingError


@dataclass(frozen=True, slots=True)
class Example:
    where: str  # "statement" | "transaction" | "script"
    sql: str


@dataclass(frozen=True, slots=True)
class Refusal:
    key: str
    #: The statements, as the docs' first column shows them (Markdown).
    statements: str
    error: type[DatabaseError]
    #: Why, and what to do instead: the tail of the error message.
    reason: str
    examples: tuple[Example, ...]


def _row(
    key: str, statements: str, error: type[DatabaseError], reason: str, *examples: Example
) -> Refusal:
    return Refusal(key, statements, error, reason, examples)


_S, _T, _X = "statement", "transaction", "script"

TABLE: tuple[Refusal, ...] = (
    _row(
        "transaction-sql",
        "`BEGIN`, `COMMIT`, `END`, `ROLLBACK` as SQL text the driver does not turn into "
        "its own calls (e.g. inside a transaction, or through `executemany`)",
        ProgrammingError,
        "each client transaction is a savepoint inside the member's group commit, opened and "
        "ended by the driver. Use connection.commit() / connection.rollback() (the driver "
        "already turns a plain BEGIN, COMMIT or ROLLBACK statement into these).",
        Example(_T, "BEGIN IMMEDIATE"),
        Example(_S, "COMMIT"),
    ),
    _row(
        "savepoint-outside-transaction",
        "`SAVEPOINT`, `RELEASE`, `ROLLBACK TO` outside a transaction",
        NotSupportedError,
        "a statement outside a transaction is committed on its own, so a savepoint could not "
        "outlive it. Open a transaction first (BEGIN, or any INSERT/UPDATE/DELETE with the "
        "default isolation level); inside one, savepoints work as in sqlite3.",
        Example(_S, "SAVEPOINT a"),
        Example(_S, "RELEASE a"),
        Example(_S, "ROLLBACK TO a"),
    ),
    _row(
        "script-leaves-transaction-open",
        "`executescript()` whose statements end inside a transaction they opened (`BEGIN` or "
        "`SAVEPOINT` without the matching `COMMIT`/`RELEASE`)",
        ProgrammingError,
        "a script is committed as one unit when it ends, so a transaction cannot stay open "
        "after it. End the transaction inside the script, or run the statements with execute() "
        "in a transaction. Nothing of the script ran.",
        Example(_X, "BEGIN; INSERT INTO t VALUES (1);"),
    ),
    _row(
        "attach",
        "`ATTACH`, `DETACH`",
        NotSupportedError,
        "an attached file is not mirrored, and attaching would change the writer connection "
        "shared by all clients. Put the tables in the mirrored database (one database per URL).",
        Example(_S, "ATTACH 'other.db' AS o"),
        Example(_T, "DETACH o"),
    ),
    _row(
        "vacuum-into",
        "`VACUUM INTO 'file'`, `VACUUM` of a schema other than `main`",
        NotSupportedError,
        "it would write a file on the member's host that is not mirrored. Take a copy of a "
        "member's database file with SQLite's backup API instead (it is a plain SQLite file).",
        Example(_S, "VACUUM INTO '/tmp/copy.db'"),
        Example(_S, "VACUUM temp"),
    ),
    _row(
        "maintenance-in-script",
        "`VACUUM`, `PRAGMA wal_checkpoint` inside `executescript()` or `executemany()`",
        NotSupportedError,
        "they run between group commits, outside the one transaction a script runs in. Send "
        "each with execute() as a statement of its own.",
        Example(_X, "VACUUM;"),
        Example(_X, "PRAGMA wal_checkpoint(TRUNCATE);"),
    ),
    _row(
        "maintenance-in-transaction",
        "`VACUUM`, `PRAGMA wal_checkpoint` inside a transaction",
        OperationalError,
        "as in sqlite3, they cannot run inside a transaction. Commit first, then send the "
        "statement on its own.",
        Example(_T, "VACUUM"),
        Example(_T, "PRAGMA wal_checkpoint"),
    ),
    _row(
        "temp-trigger",
        "`CREATE TEMP TRIGGER` (and `CREATE TRIGGER temp.name`)",
        NotSupportedError,
        "a TEMP trigger would live on the writer connection shared by every session and fire "
        "on statements the member itself runs, outside change capture, so its effects would "
        "reach this member only. Create the trigger in the main schema (it is replicated).",
        Example(_T, "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"),
    ),
    _row(
        "temp-outside-transaction",
        "`CREATE TEMP TABLE`/`VIEW`, `CREATE TABLE temp.x`, `CREATE VIRTUAL TABLE temp.x`, "
        "writes to TEMP tables, as a statement outside a transaction",
        NotSupportedError,
        "TEMP objects are private to the transaction or script that creates them and are "
        "dropped when it ends (the writer connection is shared by every session), so one "
        "made by a statement outside a transaction could never be used. Create it inside a "
        "transaction, or in the executescript() that uses it.",
        Example(_S, "CREATE TEMP TABLE scratch(x)"),
        Example(_S, "CREATE TABLE temp.scratch(x)"),
    ),
    _row(
        "reserved-name",
        "TEMP objects named `_litemirror...`",
        NotSupportedError,
        "names beginning with _litemirror are reserved for the member's own tables. Choose "
        "another name.",
        Example(_T, "CREATE TEMP TABLE _litemirror_meta(k, v)"),
    ),
    _row(
        "meta-table",
        "writing, altering, dropping or indexing `_litemirror_meta`, or a trigger on it",
        NotSupportedError,
        "the member keeps the last applied journal record there; it differs between members "
        "by design and must never run client code. Leave it alone; read it if you like.",
        Example(_T, "DELETE FROM _litemirror_meta"),
        Example(_T, "DROP TABLE _litemirror_meta"),
        Example(_T, "CREATE TRIGGER tr AFTER UPDATE ON _litemirror_meta BEGIN SELECT 1; END"),
    ),
    _row(
        "sqlite-table",
        "writing `sqlite_sequence`, `sqlite_stat1` or another `sqlite_*` table directly",
        NotSupportedError,
        "SQLite and the mirror maintain them, and every member must hold the same values. "
        "Change the user tables (AUTOINCREMENT counters follow them); ANALYZE or "
        "PRAGMA optimize refresh sqlite_stat1 on every member.",
        Example(_T, "UPDATE sqlite_sequence SET seq = 100"),
        Example(_T, "DELETE FROM sqlite_stat1"),
    ),
    _row(
        "pragma-setting",
        "`PRAGMA name = value` that changes the connection or the file (`journal_mode`, "
        "`synchronous`, `cache_size`, `defer_foreign_keys`, `recursive_triggers`, "
        "`writable_schema`, `query_only`, ...), `PRAGMA incremental_vacuum`, "
        "`PRAGMA shrink_memory`",
        NotSupportedError,
        "the writer connection is shared by all clients and the backups replay only journalled "
        "changes, so such a setting would apply to everyone, or to this member only. The mirror "
        "manages journal mode, synchronous and checkpoints; user_version and application_id "
        "are replicated; reading any pragma works.",
        Example(_T, "PRAGMA journal_mode = DELETE"),
        Example(_T, "PRAGMA defer_foreign_keys = ON"),
        Example(_T, "PRAGMA incremental_vacuum"),
    ),
    _row(
        "foreign-keys-pragma",
        "`PRAGMA foreign_keys = ON` or `OFF` that differs from the database's setting",
        NotSupportedError,
        "SQLite ignores this pragma inside a transaction, and the shared writer connection is "
        "always inside the group transaction, so it cannot change per client. Enforcement is "
        "set per database for every client: [sqlite] foreign_keys, or foreign_keys in "
        "[sqlite.databases.NAME], in the mirror's configuration (then restart the members). "
        "Setting the value already in force is accepted.",
        Example(_T, "PRAGMA foreign_keys = ON"),
        Example(_S, "PRAGMA foreign_keys = 1"),
    ),
)

BY_KEY = {r.key: r for r in TABLE}


def refuse(key: str, subject: str) -> DatabaseError:
    """The error for ``subject`` (the statement or part refused), from row ``key``."""
    row = BY_KEY[key]
    return row.error(f"{subject} is refused by litemirror: {row.reason}")


def markdown_table() -> str:
    """The table as docs/sql.md shows it."""
    lines = ["| statement | error | why, and what to do instead |", "|---|---|---|"]
    for r in TABLE:
        reason = r.reason.replace("|", "\\|")
        lines.append(f"| {r.statements} | `{r.error.__name__}` | {reason} |")
    return "\n".join(lines) + "\n"
