"""Messages of the replication stream between the primary and the other members.

Theory of operation
-------------------
A backup, DR or reporting member opens a connection to the primary's
member address and sends ``ReplHello`` with the last LSN and epoch in its
own journal. The primary checks that the member belongs to this mirror
(same mirror name, a configured member other than itself, not connected
twice) and answers ``ReplWelcome`` saying where the stream starts, or an
``Error`` and closes.

If the primary still holds the next record the member needs, the stream
starts there. Otherwise (the member is new, or fell out of the primary's
journal retention) the primary sends a *base copy*: ``SeedBegin`` with the
LSN the copy starts from and the list of databases, each database as
``SeedFile`` chunks (checksummed), then ``SeedEnd``; the stream then
continues from the copy's LSN ("activate and catch up").

Records travel in ``ReplRecords`` frames, numbered by ``seq`` (1, 2, 3, ...
per connection), each carrying journal records in their on-disk encoding
(each with its own checksum). A receiver that sees a ``seq`` gap, a record
that fails its checksum, an LSN that is not the next one, or an epoch older
than its newest refuses the frame, applies nothing of it and resets the
stream (reconnects) — it never skips.

The member acknowledges with ``ReplAck``: ``received`` (in memory),
``durable`` (fsynced in its journal) and ``applied`` (visible to readers),
each the highest LSN at that level. A database added to the primary from a
file is journalled as an ``IMPORT_DB`` record; a member that reaches one
asks for that database's copy with ``SeedRequest``.

``Heartbeat`` frames in both directions keep the link alive and carry the
sender's newest LSN, so both sides know the lag even when idle.

Records reach every member as soon as they are durable on the primary, but
``dr`` and ``reporting`` members apply only *committed* records (see
``replication/commit.py``): the primary sends them ``ReplCommitted`` each
time its commit point moves, and its heartbeats carry it too.
"""

from __future__ import annotations

import msgspec

from .fields import Count, Digest, Name, Version, Word

#: 2: ReplCommitted, Heartbeat.committed (async members apply committed records only).
REPL_VERSION = 2


class ReplMessage(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True):
    """Base of replication messages."""


class ReplHello(ReplMessage, tag="rhello", frozen=True):
    version: Version
    mirror: Name
    member: Name
    kind: Word
    last_lsn: Count
    last_epoch: Count
    compression: Word = "off"
    #: The member's copy cannot be trusted (an interrupted base copy, a failed
    #: apply): send a fresh base copy whatever its LSN says.
    reseed: bool = False


class ReplWelcome(ReplMessage, tag="rwelcome", frozen=True):
    mirror: Name
    primary: Name
    epoch: Count
    first_lsn: Count
    last_lsn: Count
    #: "stream" (records follow from ``start_lsn``) or "seed" (a base copy follows).
    mode: Word
    start_lsn: Count
    compression: Word = "off"


class ReplRecords(ReplMessage, tag="rrec", frozen=True):
    seq: Count
    first_lsn: Count
    last_lsn: Count
    #: Journal records in their on-disk encoding, back to back (maybe compressed).
    data: bytes
    compressed: bool = False


class ReplAck(ReplMessage, tag="rack", frozen=True):
    received: Count
    durable: Count
    applied: Count


class Heartbeat(ReplMessage, tag="rbeat", frozen=True):
    lsn: Count
    epoch: Count
    ts_ms: Count
    #: From the primary: its commit point (0 from a member).
    committed: Count = 0


class ReplCommitted(ReplMessage, tag="rcommit", frozen=True):
    """The primary's commit point moved: records up to ``lsn`` may be applied."""

    lsn: Count


class SeedBegin(ReplMessage, tag="sbegin", frozen=True):
    start_lsn: Count
    epoch: Count
    databases: list[Name]


class SeedFile(ReplMessage, tag="sfile", frozen=True):
    db: Name
    offset: Count
    data: bytes
    #: Set on the last chunk of the file.
    last: bool = False
    size: Count = 0
    #: xxh3_64 hex digest of the whole file, on the last chunk.
    checksum: Digest = ""
    #: The database's own LSN inside the copy, on the last chunk.
    lsn: Count = 0


class SeedEnd(ReplMessage, tag="send", frozen=True):
    start_lsn: Count


class SeedRequest(ReplMessage, tag="sreq", frozen=True):
    db: Name


FromPrimary = ReplWelcome | ReplRecords | ReplCommitted | Heartbeat | SeedBegin | SeedFile | SeedEnd
FromMember = ReplAck | Heartbeat | SeedRequest
