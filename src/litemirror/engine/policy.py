"""What client SQL may do on the shared writer connection, and SQL text helpers.

``client_action`` is the authorizer's decision for a client statement, as a
pure function of SQLite's authorizer arguments and of where the statement
runs (:class:`Rules`): allow, re-run through the DDL path (see
:mod:`litemirror.engine.capture`), run ``PRAGMA optimize`` the replicable
way, or refuse with an error built from :mod:`litemirror.engine.refusals`.
``ddl_action`` is the same decision while a DDL statement is re-run.

The writer connection is shared by every client of a database, it is always
inside the group-commit transaction, and all of its work must be replayable
on the backups. Hence:

* DDL on the main schema is recorded as a statement (the DDL path), and the
  member's meta table, SQLite's ``sqlite_*`` tables and triggers on them are
  out of reach; so are ATTACH and connection-changing pragmas.
* TEMP objects are private to one transaction or script (the member drops
  them at its end, see ``Capture.end_job``); a statement outside a
  transaction may not create one, and TEMP triggers are refused everywhere:
  they would fire on the member's own statements, outside capture.
* ``PRAGMA foreign_keys`` cannot change inside a transaction, so a client may
  only set the value the database's configuration already put in force.

``maintenance`` recognises the statements that run between group commits
(``VACUUM``, ``PRAGMA wal_checkpoint``). The text helpers of
:mod:`litemirror.engine.sqltext` (re-exported here) split a script into
statements where ``sqlite3_complete`` would (it knows about quotes, comments
and ``CREATE TRIGGER ... END``) and read a statement's first keyword, which
is all the classification that cannot be done by the authorizer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Final

import apsw

from litemirror.engine.meta import META_TABLE
from litemirror.engine.refusals import refuse
from litemirror.errors import DatabaseError, OperationalError

# Re-exported: the text helpers live in .sqltext.
from .sqltext import first_keyword as first_keyword
from .sqltext import is_blank as is_blank
from .sqltext import split_statements as split_statements

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
#: DDL codes whose ``arg2`` is the table the statement changes (the others: ``arg1``).
_TABLE_IN_ARG2 = frozenset(
    {
        apsw.SQLITE_CREATE_INDEX,
        apsw.SQLITE_CREATE_TRIGGER,
        apsw.SQLITE_DROP_INDEX,
        apsw.SQLITE_DROP_TRIGGER,
        apsw.SQLITE_ALTER_TABLE,
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
#: Codes that create a TEMP object the member must drop at the end of the job.
_TEMP_CREATE_CODES = frozenset(
    {apsw.SQLITE_CREATE_TEMP_TABLE, apsw.SQLITE_CREATE_TEMP_VIEW, apsw.SQLITE_CREATE_TEMP_INDEX}
)
_TEMP_DROP_CODES = frozenset(
    {
        apsw.SQLITE_DROP_TEMP_TABLE,
        apsw.SQLITE_DROP_TEMP_VIEW,
        apsw.SQLITE_DROP_TEMP_INDEX,
        apsw.SQLITE_DROP_TEMP_TRIGGER,
    }
)
_WRITE_CODES = frozenset({apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE})
_READ_CODES = frozenset(
    {
        apsw.SQLITE_READ,
        apsw.SQLITE_SELECT,
        apsw.SQLITE_FUNCTION,
        getattr(apsw, "SQLITE_RECURSIVE", 33),
    }
)
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema"})
_TEMP_SCHEMA_TABLES = frozenset({"sqlite_temp_master", "sqlite_temp_schema"})
#: Names the member uses for its own tables (meta, and a TEMP table while capturing).
RESERVED_PREFIX = "_litemirror"

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

#: Pragmas that act even without a value: free pages, release memory.
ACTING_PRAGMAS = frozenset({"incremental_vacuum", "shrink_memory"})

#: First keywords of transaction control statements.
TRANSACTION_KEYWORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})

#: First keywords counted by ``rowcount``, as :mod:`sqlite3` does.
DML_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


class Where(enum.Enum):
    """Where a client statement runs."""

    STATEMENT = "statement"  # a one-shot job, committed on its own (execute, executemany)
    TRANSACTION = "transaction"  # inside an interactive transaction
    SCRIPT = "script"  # inside executescript()


@dataclass(frozen=True, slots=True)
class Rules:
    """What the authorizer needs to know besides SQLite's arguments."""

    where: Where
    #: The database's foreign-key setting (``[sqlite] foreign_keys``).
    foreign_keys: bool = False


class _Verdict:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The client statement may be prepared as is.
ALLOW: Final = _Verdict("ALLOW")
#: Stop the prepare: the statement must go through the DDL path.
RUN_AS_DDL: Final = _Verdict("RUN_AS_DDL")
#: Stop the prepare: ``PRAGMA optimize`` runs as the ANALYZE statements it suggests.
RUN_OPTIMIZE: Final = _Verdict("RUN_OPTIMIZE")

Verdict = _Verdict | DatabaseError


def _reserved(name: str | None) -> bool:
    return (name or "").lower().startswith(RESERVED_PREFIX)


def _internal_table(name: str | None, what: str) -> DatabaseError | None:
    lowered = (name or "").lower()
    if lowered == META_TABLE:
        return refuse("meta-table", f"{what} {META_TABLE}")
    if lowered.startswith("sqlite_"):
        return refuse("sqlite-table", f"{what} {name}")
    return None


def client_action(
    code: int, arg1: str | None, arg2: str | None, db: str | None, rules: Rules
) -> Verdict:
    """Decide one authorizer action of a client statement (arguments as SQLite gives them)."""
    if code in _READ_CODES:
        return ALLOW  # the most frequent actions first: this runs at every prepare
    if code == apsw.SQLITE_PRAGMA:
        return _pragma(arg1, arg2, db, rules)
    private_temp = rules.where is not Where.STATEMENT
    if code in _TEMP_CREATE_CODES or (code == apsw.SQLITE_CREATE_VTABLE and db == "temp"):
        if not private_temp:
            return refuse("temp-outside-transaction", f"creating TEMP object {arg1}")
        if _reserved(arg1):
            return refuse("reserved-name", f"TEMP object {arg1}")
        return ALLOW
    if code == apsw.SQLITE_CREATE_TEMP_TRIGGER:
        return refuse("temp-trigger", f"TEMP trigger {arg1}")
    if code in _TEMP_DROP_CODES or (code == apsw.SQLITE_DROP_VTABLE and db == "temp"):
        return ALLOW
    if code in DDL_CODES:
        schema = arg1 if code == apsw.SQLITE_ALTER_TABLE else db
        if schema == "temp":
            return ALLOW if private_temp else refuse("temp-outside-transaction", "ALTER TABLE temp")
        table = arg2 if code in _TABLE_IN_ARG2 else arg1
        if code != apsw.SQLITE_ANALYZE and (table or "").lower() == META_TABLE:
            return refuse("meta-table", f"changing the schema of {META_TABLE}")
        return RUN_AS_DDL
    if code in _WRITE_CODES:
        if arg1 is None:
            return ALLOW
        if db == "temp":
            if private_temp:
                return ALLOW
            creating = arg1 in _TEMP_SCHEMA_TABLES
            what = "creating a TEMP object" if creating else f"writing TEMP table {arg1}"
            return refuse("temp-outside-transaction", what)
        if arg1 in _SCHEMA_TABLES:
            return RUN_AS_DDL
        return _internal_table(arg1, "writing") or ALLOW
    if code in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
        return refuse("transaction-sql", arg1 or "transaction control")
    if code in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
        return refuse("attach", "ATTACH" if code == apsw.SQLITE_ATTACH else "DETACH")
    return ALLOW


def ddl_action(
    code: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None, rules: Rules
) -> Verdict:
    """Decide an action while a client DDL statement is re-run by the DDL path.

    SQLite's own nested statements (writing ``sqlite_schema``, ``sqlite_stat1``,
    ``sqlite_sequence``) are allowed; everything else, including what a
    trigger fired by a foreign-key action would do, is decided as for any
    client statement. Only a refusal counts: the rest runs.
    """
    if code == apsw.SQLITE_INSERT and arg1 in _TEMP_SCHEMA_TABLES:
        # A main-schema DDL statement that makes a TEMP object: CREATE TRIGGER temp.x
        # (SQLite reports it as a main CREATE TRIGGER on the table's schema).
        return refuse("temp-trigger", "TEMP trigger")
    if code in _WRITE_CODES and trigger is None:
        return ALLOW
    verdict = client_action(code, arg1, arg2, db, rules)
    return verdict if isinstance(verdict, DatabaseError) else ALLOW


def _pragma(name_: str | None, value: str | None, db: str | None, rules: Rules) -> Verdict:
    name = (name_ or "").lower()
    if name in READ_PRAGMAS_WITH_ARGUMENT:
        return ALLOW  # also what the session extension itself runs (table_xinfo)
    if value is not None and db == "temp":
        return refuse("pragma-setting", f"PRAGMA temp.{name} = {value}")
    if name in REPLICATED_PRAGMAS and value is not None:
        return RUN_AS_DDL
    if name == "foreign_keys" and value is not None:
        if pragma_bool(value) == rules.foreign_keys:
            return ALLOW  # already in force; a no-op inside the transaction
        return refuse("foreign-keys-pragma", f"PRAGMA foreign_keys = {value}")
    if name == "optimize":
        return RUN_OPTIMIZE
    if name == "wal_checkpoint":
        return maintenance_refusal(rules.where, "PRAGMA wal_checkpoint")
    return pragma_refusal(name, value) or ALLOW


def pragma_refusal(name: str, value: str | None) -> DatabaseError | None:
    """Return the error for a pragma the client may not run, or None if it may."""
    if value is None and name not in ACTING_PRAGMAS:
        return None
    if value is not None and (name in READ_PRAGMAS_WITH_ARGUMENT or name in REPLICATED_PRAGMAS):
        return None
    shown = f"PRAGMA {name}" if value is None else f"PRAGMA {name} = {value}"
    return refuse("pragma-setting", shown)


def pragma_bool(value: str) -> bool:
    """A boolean pragma argument read the way SQLite reads it (``sqlite3GetBoolean``).

    Digits are a number (non-zero is true); on/yes/true/normal/full/extra are
    true; anything else — off/no/false and unknown words alike — is false.
    """
    text = value.strip()
    if text[:1].isdigit():
        digits = re.match(r"\d+", text)
        return bool(digits and int(digits.group()))
    return text.lower() in ("on", "yes", "true", "normal", "full", "extra")


def maintenance_refusal(where: Where, subject: str) -> DatabaseError:
    """VACUUM or a checkpoint where it cannot run: in a transaction, script or executemany."""
    if where is Where.TRANSACTION:
        return refuse("maintenance-in-transaction", subject)
    return refuse("maintenance-in-script", subject)


def keyword_refusal(keyword: str) -> DatabaseError | None:
    """Refusals of a statement outside a transaction decided by its first keyword.

    Called before a statement is tried on a reader (ATTACH would read any file
    the member can; a transaction verb would pin a reader).
    """
    if keyword in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        # A plain ROLLBACK never gets here: the driver turns it into its own call.
        return refuse("savepoint-outside-transaction", keyword)
    if keyword in TRANSACTION_KEYWORDS:
        return refuse("transaction-sql", keyword)
    if keyword in ("ATTACH", "DETACH"):
        return refuse("attach", keyword)
    return None


def optimize_mask(argument: str) -> int:
    """The mask of ``PRAGMA optimize(N)`` read as SQLite reads it (default 0xfffe)."""
    text = argument.strip()
    if not text:
        return 0xFFFE
    if text[:2].lower() == "0x":
        try:
            return int(text[2:], 16) & 0xFFFFFFFF
        except ValueError:
            return 0
    digits = re.match(r"[+-]?\d+", text)
    return int(digits.group()) & 0xFFFFFFFF if digits else 0


def script_ends_open(steps: list[tuple[str, str | None] | None]) -> bool:
    """Whether a script, if every statement succeeded, would end inside a transaction.

    ``steps`` holds each statement's transaction verb and savepoint name
    (None for other statements). A step that would fail (COMMIT without a
    transaction, an unknown savepoint) stops the script there, with its
    transaction rolled back, so it cannot end open.
    """
    in_txn = False
    names: list[bytes] = []  # open savepoints, innermost last
    by_savepoint = False  # the transaction was begun by a SAVEPOINT
    for step in steps:
        if step is None:
            continue
        verb, name = step
        if verb == "BEGIN":
            if in_txn:
                return False
            in_txn, by_savepoint, names = True, False, []
        elif verb in ("COMMIT", "ROLLBACK"):
            if not in_txn:
                return False
            in_txn, names = False, []
        elif verb == "SAVEPOINT":
            if not in_txn:
                in_txn, by_savepoint = True, True
            names.append((name or "").encode("utf-8", "surrogatepass").lower())
        else:
            want = (name or "").encode("utf-8", "surrogatepass").lower()
            if want not in names:
                return False
            index = len(names) - 1 - names[::-1].index(want)
            if verb == "RELEASE":
                del names[index:]
                if not names and by_savepoint:
                    in_txn = False
            else:  # ROLLBACK TO keeps the savepoint
                del names[index + 1 :]
    return in_txn


# ------------------------------------------------------------------- maintenance


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A statement that runs between group commits instead of inside one."""

    kind: str  # "vacuum" | "checkpoint"
    #: The checkpoint mode (PASSIVE, FULL, RESTART, TRUNCATE); "" for VACUUM.
    mode: str = ""


CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")

_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?(?:\*/|\Z)|;"""
    r"""|'(?:[^']|'')*'|"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`|\w+|.""",
    re.S,
)


def _tokens(sql: str) -> list[str]:
    out = []
    for match in _TOKEN.finditer(sql):
        tok = match.group()
        if tok.isspace() or tok == ";" or tok.startswith(("--", "/*")):
            continue
        out.append(tok)
    return out


def _unquote(token: str) -> str:
    if token[:1] in ('"', "`") and len(token) >= 2:
        return token[1:-1].replace(token[0] * 2, token[0])
    if token[:1] == "[" and len(token) >= 2:
        return token[1:-1]
    return token


def maintenance(statement: str) -> Maintenance | None:
    """Recognise ``VACUUM`` and ``PRAGMA wal_checkpoint``; refuse ``VACUUM INTO``.

    Returns None for any other statement (a PRAGMA spelled in a way not
    recognised here is still refused by the authorizer, never run inside a
    group). Raises the refusal for VACUUM INTO or of another schema.
    """
    keyword = first_keyword(statement)
    if keyword == "VACUUM":
        tokens = _tokens(statement)
        upper = [t.upper() for t in tokens]
        if "INTO" in upper or (len(tokens) >= 2 and _unquote(tokens[1]).lower() != "main"):
            raise refuse("vacuum-into", " ".join(tokens))
        if len(tokens) > 2:
            raise OperationalError(f'near "{tokens[2]}": syntax error')
        return Maintenance("vacuum")
    if keyword != "PRAGMA":
        return None
    rest = _tokens(statement)[1:]
    if len(rest) >= 3 and rest[1] == ".":
        if _unquote(rest[0]).lower() != "main":
            return None
        rest = rest[2:]
    if not rest or _unquote(rest[0]).lower() != "wal_checkpoint":
        return None
    args = rest[1:]
    paren = len(args) == 3 and args[0] == "(" and args[2] == ")"
    equals = len(args) == 2 and args[0] == "="
    if not args:
        mode = "PASSIVE"
    elif paren or equals:
        mode = _unquote(args[1]).upper()
    else:
        return None
    # SQLite runs an unknown mode as PASSIVE; so does the member.
    return Maintenance("checkpoint", mode if mode in CHECKPOINT_MODES else "PASSIVE")


# ---------------------------------------------------------------- text helpers


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
