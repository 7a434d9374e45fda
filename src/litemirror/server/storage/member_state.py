"""The member's small durable state file: recovery horizon, epoch, role and commit point.

``<data_dir>/member.json`` is written atomically (temp file, fsync, rename,
directory fsync). The *horizon* is an LSN at or below which every journal
record is known to be committed in its database, so crash recovery reads
the journal only from there instead of from its start.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec

from litemirror.durable import write_atomic

#: Saves come from several threads (housekeeping, role changes): one at a time,
#: or one's rename would take the other's temporary file away.
_SAVING = threading.Lock()


class MemberState(msgspec.Struct, kw_only=True):
    mirror: str
    member: str
    horizon: int = 0
    epoch: int = 1
    clean_shutdown: bool = False
    #: The role this member last held (primary, backup, dr, reporting).
    last_role: str | None = None
    #: The member this one last knew as primary.
    last_primary: str | None = None
    #: The member's commit point: every journal record up to it is committed in
    #: the mirror (no failover takes it back); a restart replays the journal only
    #: up to it. None: written by a version that did not record it.
    confirmed: int | None = None


def load_state(data_dir: Path) -> MemberState | None:
    path = data_dir / "member.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(raw, type=MemberState)
    except msgspec.DecodeError:
        # A torn write cannot happen (rename is atomic); an unreadable file
        # means someone edited it. Recovery from the journal start is safe.
        return None


def save_state(data_dir: Path, state: MemberState) -> None:
    path = data_dir / "member.json"
    with _SAVING:
        write_atomic(path, msgspec.json.encode(state), tmp=path.with_suffix(".tmp"))
