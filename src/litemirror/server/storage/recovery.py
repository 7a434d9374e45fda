"""Crash recovery: bring every database up to the journal.

The journal is the source of truth. A database commits a group only after
its record is durable, so after a crash a database can be *behind* its
journal by the records that were durable but not yet committed — never
ahead. Recovery replays, through the same apply path a backup uses, every
``CHANGES`` record whose LSN is above the database's own meta LSN, and
recreates databases whose ``CREATE_DB`` record is durable but whose file
never appeared.

It stops at ``upto``, the member's commit point when it is called for a
member that does not know yet whether the end of its journal survived a
failover (a restart, a demotion): those records stay in the journal, not
visible, until the primary the member rejoins confirms or rolls them back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import apsw

from litemirror.engine import apply as engine_apply
from litemirror.engine import meta
from litemirror.journal import Journal, RecordKind
from litemirror.server.storage.registry import Registry

log = logging.getLogger("litemirror.recovery")


@dataclass
class RecoveryResult:
    scanned: int = 0
    replayed: int = 0
    created: list[str] = field(default_factory=list)
    missing_imports: list[str] = field(default_factory=list)


def recover(
    journal: Journal, registry: Registry, horizon: int, upto: int | None = None
) -> RecoveryResult:
    """Replay durable records not yet in their databases, up to LSN ``upto`` (blocking)."""
    result = RecoveryResult()
    start = max(horizon + 1, journal.first_lsn or 1)
    end = journal.last_lsn if upto is None else min(upto, journal.last_lsn)
    if end < start:
        return result
    conns: dict[str, apsw.Connection] = {}
    lsns: dict[str, int] = {}
    try:
        for rec in journal.read_from(start):
            if rec.lsn > end:
                break
            result.scanned += 1
            if rec.kind in (RecordKind.CREATE_DB, RecordKind.IMPORT_DB):
                if not registry.exists(rec.db):
                    if rec.kind == RecordKind.IMPORT_DB:
                        log.error(
                            "database %s: import recorded at LSN %d never completed; "
                            "run `litemirror db add %s --from FILE` again",
                            rec.db,
                            rec.lsn,
                            rec.db,
                        )
                        result.missing_imports.append(rec.db)
                        continue
                    registry.create_file(rec.db)
                    registry.set_lsn(rec.db, rec.lsn)
                    registry.add_name(rec.db)
                    result.created.append(rec.db)
                continue
            if rec.kind != RecordKind.CHANGES or not registry.exists(rec.db):
                continue
            conn = conns.get(rec.db)
            if conn is None:
                conn = engine_apply.open_apply_connection(str(registry.path(rec.db)))
                conns[rec.db] = conn
                lsns[rec.db] = meta.read_lsn(conn)
            if rec.lsn <= lsns[rec.db]:
                continue
            engine_apply.apply_record(conn, rec.lsn, rec.payload)
            lsns[rec.db] = rec.lsn
            result.replayed += 1
    finally:
        for c in conns.values():
            c.close()
    return result
