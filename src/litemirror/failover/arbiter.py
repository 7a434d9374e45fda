"""The arbiter's decisions: one stored record, three compare-and-set requests (pure).

Theory of operation
-------------------
The arbiter is the witness on a third host. It stores one
:class:`~litemirror.failover.events.ArbiterRecord` -- the newest epoch, its
holder, whether the holder's commits wait for the backup, and a pending
handover -- and knows which members it currently has contact with (the
arbiter process drops a member from ``in_contact`` when its own QoS timeout
for that member elapses, and adds it back on any message).

Every request is a compare-and-set on the record, decided here, atomically:

* ``Claim(m, e, over)`` -- store ``(e, m)``. Refused when ``e`` is not newer
  than the stored epoch (so an epoch is granted at most once), when ``over``
  is not the stored epoch (the claimant is behind), or when the claim is not
  justified: a normal claim needs the stored holder to be out of contact
  *and* its backup to be active (its commits waited for the claimant), or a
  handover to the claimant. ``force`` (operator promote) needs only the
  holder to be out of contact. A granted claim stores ``backup_active=False``:
  the new holder has no active backup yet.
* ``SetBackup(m, e, active)`` -- only the holder of ``e`` may change the flag.
  A holder stores ``active=False`` *before* committing without its backup;
  from then on the backup's claims are refused, which is what makes it
  impossible for the backup to take over while the primary commits alone.
* ``HandOver(m, e, to)`` -- only the holder of ``e``, only to an active backup.

The arbiter process must write the record durably before it sends the answer
(a restarted arbiter must not forget that the backup was marked inactive).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .events import ArbiterRecord, ArbiterReport, ArbiterRequest, Claim, HandOver, SetBackup


@dataclass(frozen=True)
class Arbiter:
    """The arbiter's whole state. ``handle`` returns the next state and the answer."""

    record: ArbiterRecord = field(default_factory=ArbiterRecord)
    in_contact: frozenset[str] = frozenset()

    def seen(self, member: str) -> Arbiter:
        """A message arrived from ``member``."""
        if member in self.in_contact:
            return self
        return replace(self, in_contact=self.in_contact | {member})

    def lost(self, member: str) -> Arbiter:
        """The arbiter's QoS timeout for ``member`` elapsed (or its session closed)."""
        if member not in self.in_contact:
            return self
        return replace(self, in_contact=self.in_contact - {member})

    def restarted(self) -> Arbiter:
        """After a restart the record is read back from disk; every session is gone."""
        return Arbiter(record=self.record)

    def report(
        self, answered: ArbiterRequest | None = None, refused: str | None = None
    ) -> ArbiterReport:
        return ArbiterReport(self.record, self.in_contact, answered, refused)

    def handle(self, member: str, request: ArbiterRequest | None) -> tuple[Arbiter, ArbiterReport]:
        """Process one message from ``member`` (a heartbeat when ``request`` is None)."""
        state = self.seen(member)
        if request is None:
            return state, state.report()
        refused = _refusal(state, request)
        if refused is not None:
            return state, state.report(request, refused)
        new = replace(state, record=_apply(state.record, request))
        return new, new.report(request)


def _refusal(state: Arbiter, req: ArbiterRequest) -> str | None:
    """Why ``req`` must be refused, or None when it is accepted."""
    rec = state.record
    if isinstance(req, Claim):
        if req.epoch <= rec.epoch:
            return (
                f"epoch {req.epoch} is not newer than the stored epoch {rec.epoch} "
                f"held by {rec.holder}"
            )
        if req.over_epoch != rec.epoch:
            return (
                f"{req.member} claims over epoch {req.over_epoch} but the stored epoch is "
                f"{rec.epoch} held by {rec.holder}"
            )
        if rec.holder is None or rec.handover_to == req.member:
            return None  # a new mirror's first primary, or a switchover
        if rec.holder == req.member:
            return f"{req.member} already holds epoch {rec.epoch}"
        if rec.holder in state.in_contact:
            return f"the arbiter still has contact with the primary {rec.holder}"
        if req.force:
            return None
        if not rec.backup_active:
            return (
                f"{rec.holder} marked its backup inactive at epoch {rec.epoch}; "
                f"it may have committed without {req.member}"
            )
        return None
    if rec.epoch != req.epoch or rec.holder != req.member:
        return (
            f"{req.member} does not hold epoch {req.epoch}; the stored epoch is {rec.epoch} "
            f"held by {rec.holder}"
        )
    if isinstance(req, HandOver) and not rec.backup_active:
        return f"cannot hand over to {req.to}: it is not recorded as an active backup"
    return None


def _apply(rec: ArbiterRecord, req: ArbiterRequest) -> ArbiterRecord:
    if isinstance(req, Claim):
        return ArbiterRecord(epoch=req.epoch, holder=req.member)
    if isinstance(req, SetBackup):
        return replace(rec, backup_active=req.active, handover_to=None)
    assert isinstance(req, HandOver)
    return replace(rec, handover_to=req.to)
