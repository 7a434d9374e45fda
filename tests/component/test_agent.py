"""The failover agent on fakes: events in, the right transitions called, in order.

The agent is fed what its peer channel and arbiter session would report, and
runs its queued actions with :meth:`FailoverAgent.settle`; the transitions are
a recording fake, the clock is moved by hand. No sockets, no processes.
"""

from __future__ import annotations

import asyncio

from litemirror.config import MirrorSection
from litemirror.failover import (
    ArbiterRecord,
    ArbiterReport,
    PeerHeartbeat,
    PeerLost,
    Persisted,
    State,
)
from litemirror.protocol import peer as p
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.server.ha.agent import FailoverAgent
from litemirror.testing.fakes import EventRecorder, FakeClock, memory_stream_pair
from litemirror.testing.ha_fakes import FakeActions, Trail, member, refusing_dialer

MIRROR = MirrorSection(name="m", arbiter="127.0.0.1:7790", qos_timeout_ms=1000, heartbeat_ms=200)
REC4 = ArbiterRecord(4, "a", backup_active=True)
BOTH = frozenset({"a", "b"})


def agent(
    me: str = "b", peer: str = "a", fail: dict[str, str] | None = None
) -> tuple[FailoverAgent, FakeActions, EventRecorder, FakeClock]:
    actions = FakeActions(Trail(), fail)
    events = EventRecorder()
    clock = FakeClock()
    ag = FailoverAgent(
        me=member(me),
        peer=member(peer, port=7002),
        mirror=MIRROR,
        persisted=Persisted(4, "a"),
        actions=actions,
        dial=refusing_dialer,
        event=events,
        clock=clock,
    )
    return ag, actions, events, clock


def active_backup(ag: FailoverAgent) -> None:
    ag.feed(PeerHeartbeat(State.PRIMARY, 4, "a", False))
    ag.feed(PeerHeartbeat(State.PRIMARY, 4, "a", True))
    ag.feed(ArbiterReport(REC4, BOTH))


def test_a_backup_follows_then_takes_over_once_the_arbiter_grants_the_epoch() -> None:
    ag, actions, events, _ = agent()

    async def go() -> None:
        assert ag.state is State.WAITING
        active_backup(ag)
        await ag.settle()
        assert actions.trail.lines == ["follow_primary a 4"]
        assert ag.state is State.BACKUP_ACTIVE and ag.may_acknowledge()

        ag.feed(PeerLost())
        assert ag.state is State.BACKUP_ACTIVE  # the arbiter still sees a
        ag.feed(ArbiterReport(REC4, frozenset({"b"})))
        assert ag.state is State.TAKING_OVER and not ag.may_acknowledge()
        claim = ag.view.request
        assert claim is not None
        ag.feed(ArbiterReport(ArbiterRecord(5, "b"), frozenset({"b"}), answered=claim))
        await ag.settle()

    asyncio.run(go())
    assert actions.trail.lines == [
        "follow_primary a 4",
        "record_epoch 5 b",
        "prepare_to_lead 5",
        "open_writes 5 wait=False",
        "notify_hook notify_become_primary 5",
    ]
    assert actions.states == [
        State.BACKUP_CATCHING_UP,
        State.BACKUP_ACTIVE,
        State.TAKING_OVER,
        State.PRIMARY_ALONE,
    ]
    assert actions.reason.startswith("taking over as primary at epoch 5")
    assert events.kinds().count("failover") == len(ag.decisions)
    assert ag.decisions[-1] == actions.reason


def test_a_failed_action_drops_the_rest_of_its_decision() -> None:
    ag, actions, _, _ = agent(fail={"prepare_to_lead": "the VIP is taken elsewhere"})

    async def go() -> None:
        active_backup(ag)
        ag.feed(PeerLost())
        ag.feed(ArbiterReport(REC4, frozenset({"b"})))
        claim = ag.view.request
        assert claim is not None
        ag.feed(ArbiterReport(ArbiterRecord(5, "b"), frozenset({"b"}), answered=claim))
        await ag.settle()

    asyncio.run(go())
    lines = actions.trail.lines
    assert "open_writes 5 wait=False" not in lines
    assert "notify_hook notify_become_primary 5" not in lines
    assert lines[-2:] == [
        "stop_writes deposed=False None",
        "notify_hook notify_become_primary_failed 5",
    ]
    assert ag.state is State.WAITING
    assert "the VIP is taken elsewhere" in actions.reason


def test_a_primary_that_sees_a_newer_epoch_records_it_then_fences() -> None:
    ag, actions, events, _ = agent(me="a", peer="b")

    async def go() -> None:
        ag.feed(PeerHeartbeat(State.BACKUP_ACTIVE, 4, "a", False))
        await ag.settle()
        ag.newer_epoch(5, "b")
        ag.newer_epoch(5, "b")  # heard again: nothing new
        await ag.settle()

    asyncio.run(go())
    lines = actions.trail.lines
    assert lines[-2:] == ["record_epoch 5 b", "stop_writes deposed=True b"]
    assert ag.state is State.FENCED
    assert events.events[-1].severity == "warning"


def test_peer_silence_for_the_qos_timeout_is_peer_lost() -> None:
    ag, _, _, clock = agent()
    ag.heard_peer(p.PeerBeat(state="primary", epoch=4, holder="a", backup_active=False))
    assert ag.view.peer_up
    clock.advance(0.9)
    ag.check_peer()
    assert ag.view.peer_up
    clock.advance(0.2)
    ag.check_peer()
    assert not ag.view.peer_up


def test_beats_on_the_peer_connection_feed_the_agent_and_its_close_is_peer_lost() -> None:
    ag, actions, _, _ = agent()

    async def go() -> None:
        (reader, _), (_, peer_writer) = memory_stream_pair()
        peer_writer.write(encode(p.PeerBeat(state="primary", epoch=4, holder="a")))
        peer_writer.write(
            encode(p.PeerBeat(state="primary", epoch=4, holder="a", backup_active=True))
        )
        peer_writer.close()
        hello = p.PeerHello(version=p.PEER_VERSION, mirror="m", member="a")
        await ag.peer_inbound(reader, FrameDecoder(), hello)
        await ag.settle()

    asyncio.run(go())
    assert actions.trail.lines == ["follow_primary a 4"]
    assert actions.states[:2] == [State.BACKUP_CATCHING_UP, State.BACKUP_ACTIVE]
    assert not ag.view.peer_up


def test_a_peer_of_another_mirror_is_refused_and_feeds_nothing() -> None:
    ag, actions, events, _ = agent()

    async def go() -> None:
        (reader, _), (_, peer_writer) = memory_stream_pair()
        peer_writer.write(encode(p.PeerBeat(state="primary", epoch=4, holder="a")))
        hello = p.PeerHello(version=p.PEER_VERSION, mirror="other", member="a")
        await ag.peer_inbound(reader, FrameDecoder(), hello)

    asyncio.run(go())
    assert events.kinds() == ["peer_refused"]
    assert ag.state is State.WAITING and actions.trail.lines == []
