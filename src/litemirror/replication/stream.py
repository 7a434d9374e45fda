"""Which replication frames a member accepts — decided without sockets, files or clocks.

Theory of operation
-------------------
A member appends what the primary streams to its own journal, so a frame is
accepted only if every record in it is exactly what comes next:

* frames are numbered per connection (1, 2, 3, ...); a frame whose number is
  not the next one means frames were lost or reordered;
* the payload must decode into whole records, each passing its checksums,
  with nothing left over;
* the records must be the LSNs the frame announces, continuing the member's
  journal with no gap;
* epochs never go backwards: not below the newest epoch the member has seen,
  and not within the frame.

Anything else is refused whole — nothing of the frame is applied — and the
receiver resets the stream, which restarts from its journal's end. The
receiver (server/stream/receiver.py) does the I/O around this function.
"""

from __future__ import annotations

from dataclasses import dataclass

from litemirror.journal.record import Record, scan


@dataclass(frozen=True)
class FrameVerdict:
    """The records to append, or why the frame is refused (exactly one is set)."""

    records: tuple[Record, ...] = ()
    refused: str | None = None


def check_frame(
    *,
    seq: int,
    expected_seq: int,
    first_lsn: int,
    last_lsn: int,
    data: bytes,
    journal_last_lsn: int,
    journal_last_epoch: int,
) -> FrameVerdict:
    """Decide whether a ``ReplRecords`` frame (already decompressed) may be appended."""
    if seq != expected_seq:
        return FrameVerdict(
            refused=f"frame {seq} arrived where {expected_seq} was expected; "
            "nothing of it was applied"
        )
    res = scan(data)
    if res.problem is not None or res.good_end != len(data) or not res.records:
        return FrameVerdict(
            refused=f"frame {seq} holds a damaged record ({res.problem}); nothing of it was applied"
        )
    recs = res.records
    if recs[0].lsn != first_lsn or recs[-1].lsn != last_lsn:
        return FrameVerdict(
            refused=f"frame {seq} says LSN {first_lsn}..{last_lsn} but holds "
            f"{recs[0].lsn}..{recs[-1].lsn}"
        )
    expected = journal_last_lsn + 1
    for i, rec in enumerate(recs):
        if rec.lsn != expected + i:
            return FrameVerdict(
                refused=f"LSN gap: record {rec.lsn} arrived where "
                f"{expected + i} was expected; nothing of the frame "
                "was applied"
            )
        if rec.epoch < journal_last_epoch or (i and rec.epoch < recs[i - 1].epoch):
            return FrameVerdict(
                refused=f"record {rec.lsn} is from epoch {rec.epoch}, older "
                f"than epoch {journal_last_epoch} already seen; refused"
            )
    return FrameVerdict(records=tuple(recs))
