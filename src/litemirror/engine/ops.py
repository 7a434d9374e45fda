"""The replicated operations of a journal record, and their encoding.

A record's payload is an ordered list of operations that turns the database
as it was before the record into the database after it:

- ``ChangesetOp``: a SQLite session changeset (row changes, keyed by primary
  key, or by rowid for tables without one);
- ``SqlOp``: a statement to execute as is (DDL, ``PRAGMA user_version = n``).

A record whose only op is ``SqlOp("VACUUM")`` is a *VACUUM record*: every
member vacuums its copy at the same point of the journal, outside any
transaction (see :func:`litemirror.engine.apply.apply_record`). VACUUM may
renumber the rowids of tables without a primary key, which changesets key
rows by, so it must happen everywhere in the same order as the changes.

Order matters: a changeset is always applied against the schema that was in
force when it was captured, which is why capture cuts changesets around DDL.
Encoded as MessagePack: a list of ``[tag, value]`` arrays.
"""

from __future__ import annotations

import msgspec

from litemirror.errors import JournalCorruptError


class ChangesetOp(msgspec.Struct, tag="cs", frozen=True, array_like=True):
    """Row changes as a session changeset."""

    data: bytes


class SqlOp(msgspec.Struct, tag="sql", frozen=True, array_like=True):
    """A statement replayed verbatim (DDL and replicated pragmas)."""

    sql: str


Op = ChangesetOp | SqlOp

VACUUM_SQL = "VACUUM"


def is_vacuum(ops: list[Op]) -> bool:
    """Whether ``ops`` are a VACUUM record's."""
    return len(ops) == 1 and isinstance(ops[0], SqlOp) and ops[0].sql == VACUUM_SQL


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Op])


def encode_ops(ops: list[Op]) -> bytes:
    return _encoder.encode(ops)


def decode_ops(payload: bytes) -> list[Op]:
    """Decode a record payload.

    Raises :class:`JournalCorruptError`: the payload passed its record checksum
    yet does not decode, so it was written wrongly (or by an incompatible
    version); applying any part of it would make the copy diverge.
    """
    try:
        return _decoder.decode(payload)
    # msgspec raises UnicodeDecodeError for invalid UTF-8 in a str and
    # RecursionError for absurdly nested input; both are just "does not decode".
    except (
        msgspec.DecodeError,
        msgspec.ValidationError,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:
        raise JournalCorruptError(
            f"a journal record payload ({len(payload)} bytes) does not decode as "
            f"replicated operations: {exc}. Nothing was applied; re-seed this member "
            "from the primary."
        ) from exc
