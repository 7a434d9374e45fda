"""Messages between the two failover members' agents (pure).

Each failover member opens one connection to the other and sends
``PeerHello`` then a ``PeerBeat`` every heartbeat interval: its failover
state, the newest epoch it knows and its holder, and — when primary —
whether its commits wait for the peer. The receiving side turns each beat
into a ``PeerHeartbeat`` event for its agent; silence for the QoS timeout,
or the connection closing, is ``PeerLost``. ``PeerTakeOver`` is the
switching-over primary asking its backup to take over.
"""

from __future__ import annotations

import msgspec

from .fields import Count, Name, Version, Word

PEER_VERSION = 1


class PeerMessage(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True):
    pass


class PeerHello(PeerMessage, tag="phello", frozen=True):
    version: Version
    mirror: Name
    member: Name


class PeerBeat(PeerMessage, tag="pbeat", frozen=True):
    state: Word
    epoch: Count
    holder: Name | None
    backup_active: bool = False


class PeerTakeOver(PeerMessage, tag="ptake", frozen=True):
    epoch: Count


FromPeer = PeerBeat | PeerTakeOver
