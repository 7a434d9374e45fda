"""Where a joining member's stream starts (pure: the journal is asked through a callable).

Like Raft's log matching. The member says which LSN and epoch its journal
ends with; the primary's history agrees with the member's up to the last
record before the primary's first record of a *newer* epoch than the
member's last (epochs never decrease along a journal, so that record is
found by binary search). From there:

- ``stream``: the member's journal is a prefix of ours; send from its end.
- ``rewind``: the member holds records past the common point that were never
  ours (a deposed primary's last commits); it rolls them back — keeping them
  in ``diverged/`` — and the stream starts after the common point.
- ``seed``: we no longer hold the records it needs (purged), or it asked for
  a fresh copy; it gets a base copy of every database.

The plan is only as good as the epochs the journals carry: a record must be
stamped with the epoch at which its write *started* (see the write fence in
``server/storage/database.py``), or a deposed primary's record can pass for the new
primary's and no rewind happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

Mode = Literal["stream", "rewind", "seed"]


class StartPlan(NamedTuple):
    mode: Mode
    #: The first LSN to send (for ``seed``: 0, the copy carries its own LSN).
    start: int


def plan_start(
    member_last_lsn: int,
    member_last_epoch: int,
    *,
    reseed: bool,
    first_lsn: int | None,
    last_lsn: int,
    epoch_at: Callable[[int], int],
) -> StartPlan:
    """Decide how member ``(member_last_lsn, member_last_epoch)`` joins our journal.

    ``first_lsn``/``last_lsn`` bound the records we hold (``first_lsn`` None:
    none); ``epoch_at(lsn)`` gives the epoch of our record at ``lsn`` (asked
    only for ``first_lsn <= lsn <= last_lsn``).
    """
    last, epoch = member_last_lsn, member_last_epoch
    if reseed:
        return StartPlan("seed", 0)
    if first_lsn is None:  # nothing held: only a member exactly at our end can stream
        return StartPlan("stream", last + 1) if last == last_lsn else StartPlan("seed", 0)
    lo, hi, newer = first_lsn, last_lsn, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if epoch_at(mid) > epoch:
            newer, hi = mid, mid - 1
        else:
            lo = mid + 1
    common = min(last, last_lsn if newer is None else newer - 1)
    if common + 1 < first_lsn:
        return StartPlan("seed", 0)
    if common >= first_lsn and epoch_at(common) > epoch:
        return StartPlan("seed", 0)
    return StartPlan("stream" if common == last else "rewind", common + 1)
