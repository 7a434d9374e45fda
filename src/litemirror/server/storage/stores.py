"""Opening a member's stores at start: its data directory, state file and journal.

Runs on a worker thread before anything else (it reads and may truncate
files). It refuses a data directory that belongs to another member or
mirror, truncates a torn journal tail, and works out where recovery must
stop: records after the recorded commit point may not have survived a
failover that happened while this member was down, so they are replayed only
once the primary confirms them (``replication/commit.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from litemirror.config import Config, Member
from litemirror.errors import ConfigError
from litemirror.journal import Journal
from litemirror.replication.commit import startup_limit
from litemirror.server.storage.member_state import MemberState, load_state, save_state

log = logging.getLogger("litemirror.member")


@dataclass
class Stores:
    journal: Journal
    #: The member state file's record (mutated in place and saved by its owners).
    state: MemberState
    #: The newest epoch this member knows of (journal, state file, or the floor).
    epoch: int
    #: Recovery replays the journal up to here and no further (the commit point).
    replay_limit: int
    #: The horizon to replay from.
    horizon: int


def open_stores(config: Config, me: Member) -> Stores:
    data = me.data_dir
    data.mkdir(parents=True, exist_ok=True)
    st = load_state(data)
    if st is not None and (st.mirror != config.mirror.name or st.member != me.name):
        raise ConfigError(
            f"data_dir {str(data)!r} belongs to member {st.member!r} of mirror "
            f"{st.mirror!r}, not {me.name!r} of {config.mirror.name!r}; "
            "point data_dir elsewhere"
        )
    journal = Journal.open(data / "journal", segment_bytes=config.journal.segment_bytes)
    rep = journal.recovery
    if rep.truncated_bytes:
        log.warning(
            "journal: truncated a torn tail of %d bytes (%s)", rep.truncated_bytes, rep.problem
        )
    log.info(
        "journal: %d segment(s), LSN %s..%s, epoch %d",
        rep.segments,
        rep.first_lsn,
        rep.last_lsn,
        rep.last_epoch,
    )
    # With an arbiter a new mirror starts at epoch 0 and claims epoch 1 there.
    floor = 0 if config.mirror.arbiter is not None else 1
    epoch = max(journal.last_epoch, st.epoch if st else floor, floor)
    limit = startup_limit(journal.last_lsn, st.confirmed if st else None)
    horizon = min(st.horizon, limit) if st else 0
    state = MemberState(
        mirror=config.mirror.name,
        member=me.name,
        horizon=horizon,
        epoch=epoch,
        last_role=st.last_role if st else None,
        last_primary=st.last_primary if st else None,
        confirmed=limit,
    )
    save_state(data, state)
    return Stores(journal, state, epoch, limit, horizon)
