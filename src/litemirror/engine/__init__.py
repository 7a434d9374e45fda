"""SQLite through apsw: run and capture client SQL, apply it to copies, checksum.

- :mod:`.capture` runs client statements on the writer connection and turns
  each job into ops (changesets and DDL statements, in order);
- :mod:`.ops` is the record payload: the ops and their encoding;
- :mod:`.apply` applies a record to a copy (backups, crash recovery);
- :mod:`.meta` keeps the last applied LSN inside each database;
- :mod:`.checksum` proves two copies hold the same data;
- :mod:`.sqlerrors` maps SQLite errors onto :mod:`litemirror.errors`;
- :mod:`.policy` says which statements clients may run, :mod:`.refusals`
  why it refuses the others (the table docs/sql.md shows);
- :mod:`.maintenance` runs VACUUM and checkpoints, outside any transaction.
"""

from litemirror.engine.apply import apply_ops, apply_record, open_apply_connection
from litemirror.engine.capture import Capture, ExecResult
from litemirror.engine.checksum import database_checksum, table_checksums
from litemirror.engine.meta import META_TABLE, ensure_meta, read_lsn, write_lsn
from litemirror.engine.ops import ChangesetOp, Op, SqlOp, decode_ops, encode_ops
from litemirror.engine.policy import Where
from litemirror.engine.sqlerrors import translate

__all__ = [
    "META_TABLE",
    "Capture",
    "ChangesetOp",
    "ExecResult",
    "Op",
    "SqlOp",
    "Where",
    "apply_ops",
    "apply_record",
    "database_checksum",
    "decode_ops",
    "encode_ops",
    "ensure_meta",
    "open_apply_connection",
    "read_lsn",
    "table_checksums",
    "translate",
    "write_lsn",
]
