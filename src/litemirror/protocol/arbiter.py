"""Messages between the failover members and the arbiter, and their conversion.

Theory of operation
-------------------
Each failover member keeps one connection to the arbiter. It opens with
``ArbHello`` (protocol version, mirror name, member name) and goes on with
one ``ArbBeat`` per heartbeat interval. A beat either only says "I am alive"
(``request`` is None) or carries one of the arbiter's three compare-and-set
requests (:class:`WireClaim`, :class:`WireSetBackup`, :class:`WireHandOver`,
mirrors of :mod:`litemirror.failover.events`). Every beat gets exactly one
``ArbAnswer`` with the same ``seq``: the arbiter's record, the members it has
contact with, and what became of the request. There is no separate welcome:
a refused handshake (wrong version, another mirror, a member already
connected) is answered with :class:`~litemirror.protocol.messages.Error`
instead of the first answer, and the connection is closed.

The arbiter also answers the members' control handshake (``Hello`` with an
empty database, then ``StatusRequest``) so ``litemirror status`` can show it;
that is why :data:`ArbOpening` holds both kinds of opening message.

Frames are the usual length-prefixed MessagePack frames
(:mod:`litemirror.protocol.framing`), limited to :data:`MAX_FRAME` bytes:
nothing legitimate here comes close.

The conversion functions are pure and total, so the member's failover agent
only ever sees :class:`~litemirror.failover.events.ArbiterReport` values.
"""

from __future__ import annotations

import msgspec

from litemirror.failover.events import (
    ArbiterRecord,
    ArbiterReport,
    ArbiterRequest,
    Claim,
    HandOver,
    SetBackup,
)

from . import messages as m
from .fields import Count, Name, Sentence, Version

ARB_VERSION = 1
#: Frame size limit on arbiter connections, both directions.
MAX_FRAME = 64 * 1024


class ArbMessage(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True):
    """Base of arbiter messages (same tag field as every other litemirror message)."""


# ------------------------------------------------------------------ requests


class WireClaim(ArbMessage, tag="aclaim", frozen=True):
    member: Name
    epoch: Count
    over_epoch: Count
    force: bool = False


class WireSetBackup(ArbMessage, tag="asetbackup", frozen=True):
    member: Name
    epoch: Count
    active: bool


class WireHandOver(ArbMessage, tag="ahandover", frozen=True):
    member: Name
    epoch: Count
    to: Name


WireRequest = WireClaim | WireSetBackup | WireHandOver


# ------------------------------------------------------------------ messages


class ArbHello(ArbMessage, tag="ahello", frozen=True):
    version: Version
    mirror: Name
    member: Name


class ArbBeat(ArbMessage, tag="abeat", frozen=True):
    seq: Count
    request: WireRequest | None = None


class ArbAnswer(ArbMessage, tag="aanswer", frozen=True):
    seq: Count
    epoch: Count
    holder: Name | None
    backup_active: bool
    handover_to: Name | None
    in_contact: list[Name]
    answered: WireRequest | None = None
    refused: Sentence | None = None


#: What may open a connection to the arbiter: a member's session or a control query.
ArbOpening = ArbHello | m.Hello
#: What the arbiter reads from a member after ``ArbHello``.
FromMember = ArbBeat
#: What a member reads from the arbiter.
FromArbiter = ArbAnswer | m.Error


# --------------------------------------------------------------- conversion


def wire_request(req: ArbiterRequest) -> WireRequest:
    """The wire form of a failover request."""
    if isinstance(req, Claim):
        return WireClaim(req.member, req.epoch, req.over_epoch, req.force)
    if isinstance(req, SetBackup):
        return WireSetBackup(req.member, req.epoch, req.active)
    return WireHandOver(req.member, req.epoch, req.to)


def from_wire(req: WireRequest) -> ArbiterRequest:
    """The failover request a wire request stands for."""
    if isinstance(req, WireClaim):
        return Claim(req.member, req.epoch, req.over_epoch, req.force)
    if isinstance(req, WireSetBackup):
        return SetBackup(req.member, req.epoch, req.active)
    return HandOver(req.member, req.epoch, req.to)


def answer_of(seq: int, report: ArbiterReport) -> ArbAnswer:
    """The answer to beat ``seq`` carrying ``report``."""
    rec = report.record
    return ArbAnswer(
        seq=seq,
        epoch=rec.epoch,
        holder=rec.holder,
        backup_active=rec.backup_active,
        handover_to=rec.handover_to,
        # Sorted so equal states encode to equal bytes.
        in_contact=sorted(report.in_contact),
        answered=wire_request(report.answered) if report.answered is not None else None,
        refused=report.refused,
    )


def to_report(answer: ArbAnswer) -> ArbiterReport:
    """The :class:`ArbiterReport` the member's failover agent is fed."""
    return ArbiterReport(
        record=ArbiterRecord(
            epoch=answer.epoch,
            holder=answer.holder,
            backup_active=answer.backup_active,
            handover_to=answer.handover_to,
        ),
        in_contact=frozenset(answer.in_contact),
        answered=from_wire(answer.answered) if answer.answered is not None else None,
        refused=answer.refused,
    )


def describe(req: ArbiterRequest) -> str:
    """A request as the subject of a sentence: "b's claim to epoch 3 over epoch 2"."""
    if isinstance(req, Claim):
        forced = " (operator promote)" if req.force else ""
        return f"{req.member}'s claim to epoch {req.epoch} over epoch {req.over_epoch}{forced}"
    if isinstance(req, SetBackup):
        state = "active" if req.active else "inactive"
        return f"{req.member}'s request to record its backup {state} at epoch {req.epoch}"
    return f"{req.member}'s handover of epoch {req.epoch} to {req.to}"
