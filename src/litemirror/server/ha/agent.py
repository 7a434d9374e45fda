"""The member's failover agent: feeds the pure state machine, runs its actions.

Theory of operation
-------------------
The decision lives in :mod:`litemirror.failover` (pure, exhaustively
checked). This module is its shell: it turns what the member observes into
events and carries out the actions of each decision, in order.

Events come from three places:

* the **peer channel** — each failover member opens a connection to the
  other and sends a ``PeerBeat`` every heartbeat; a beat received becomes
  ``PeerHeartbeat``; silence for the QoS timeout, or the connection closing
  (a killed process closes its sockets at once), becomes ``PeerLost``;
* the **arbiter session** — every heartbeat the agent sends the pending
  request (if any) and feeds the answer as ``ArbiterReport``; no answer
  within the QoS timeout, measured from the *sending* time of the last
  answered beat, is ``ArbiterLost``;
* the **commit path** — the hub reports ``AckTimeout`` (the backup did not
  acknowledge in time; commits keep waiting until the agent decides) and
  ``BackupCaughtUp``; replication reports ``NewerEpochSeen``.

Actions run one at a time from a queue; the first failing action is fed
back as ``ActionFailed`` and the rest of that decision is dropped. Every
decision's reason is logged as one sentence and shown by ``status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from litemirror.config import Member, MirrorSection, parse_address
from litemirror.errors import Error
from litemirror.failover import (
    AckTimeout,
    Action,
    ActionFailed,
    Agent,
    ArbiterLost,
    AskArbiter,
    BackupCaughtUp,
    BecomeFailoverMember,
    Event,
    FollowPrimary,
    MemberKind,
    NewerEpochSeen,
    NotifyBecamePrimary,
    NotifyBecomePrimaryFailed,
    OpenWrites,
    PeerHeartbeat,
    PeerLost,
    Persisted,
    PrepareToLead,
    RecordEpoch,
    SendTakeOver,
    State,
    StopWrites,
    TakeOverRequested,
    View,
    heartbeat,
)
from litemirror.protocol import peer as p
from litemirror.protocol.framing import FrameDecoder, encode, read_message
from litemirror.server.ha.arbiter_client import ArbiterClient
from litemirror.server.ha.ports import Dialer, FailoverActions
from litemirror.server.ports import EventSink

log = logging.getLogger("litemirror.agent")


class FailoverAgent:
    """One member's agent.

    ``persisted`` is what the member state file says (newest epoch, its holder);
    ``actions`` carries out decisions (the member's :class:`~.transitions.Transitions`);
    ``dial`` reaches the peer and the arbiter; ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        *,
        me: Member,
        peer: Member | None,
        mirror: MirrorSection,
        persisted: Persisted,
        actions: FailoverActions,
        dial: Dialer,
        event: EventSink,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self.peer = peer
        self.mirror = mirror
        self.actions = actions
        self.dial = dial
        self.event = event
        self.clock = clock
        view = View.start(me.name, peer.name if peer else None, persisted, MemberKind(me.kind))
        self.agent = Agent(view)
        self._actions: asyncio.Queue[tuple[int, Action]] = asyncio.Queue()
        self._generation = 0
        self._last_peer_beat = 0.0
        self._peer_out: asyncio.StreamWriter | None = None
        self._arbiter_ok_sent = 0.0
        self._arbiter_lost_said = False
        #: The session with the arbiter (None without one, or before it is first tried).
        self.arbiter: ArbiterClient | None = None
        #: Consecutive failed attempts to lead (hooks said no, VIP not taken).
        self._lead_failures = 0
        self.decisions: list[str] = []
        #: Decisions made since start (the list above keeps the last 20).
        self.decision_count = 0

    def decisions_since(self, count: int) -> list[str]:
        """The decision sentences made after the ``count``-th (as many as are kept)."""
        n = self.decision_count - count
        return self.decisions[-n:] if n > 0 else []

    @property
    def state(self) -> State:
        return self.agent.view.state

    @property
    def view(self) -> View:
        return self.agent.view

    def may_acknowledge(self) -> bool:
        """A backup acknowledges only while following (never while taking over)."""
        return self.state in (State.BACKUP_ACTIVE, State.BACKUP_CATCHING_UP, State.ASYNC)

    # ------------------------------------------------------------- feeding

    def feed(self, event: Event) -> None:
        before = self.agent.view
        d = self.agent.handle(event)
        self.actions.note_reason(d.reason)
        if d.changed or d.actions:
            self.decisions.append(d.reason)
            self.decision_count += 1
            del self.decisions[:-20]
            self.event(
                "failover",
                d.reason,
                "warning" if d.view.state in (State.IN_TROUBLE, State.FENCED) else "info",
                state=d.view.state.value,
                epoch=d.view.epoch,
            )
        if d.actions:
            # A new decision supersedes what is left of an older one.
            self._generation += 1
            for a in d.actions:
                self._actions.put_nowait((self._generation, a))
        if before.state != d.view.state:
            self.actions.failover_state_changed(d.view.state)

    # ----------------------------------------------------------------- run

    async def run(self) -> None:
        tasks = [self._execute(), self._watchdog()]
        if self.peer is not None:
            tasks.append(self._peer_sender())
        if self.mirror.arbiter is not None:
            tasks.append(self._arbiter_loop())
        await asyncio.gather(*tasks)

    async def _execute(self) -> None:
        while True:
            gen, action = await self._actions.get()
            await self._run_queued(gen, action)

    async def settle(self) -> None:
        """Run the actions queued now, and those they lead to, until none is left (the
        loop in :meth:`run` does the same as they come; tests drive the agent with it)."""
        while not self._actions.empty():
            gen, action = self._actions.get_nowait()
            await self._run_queued(gen, action)

    async def _run_queued(self, gen: int, action: Action) -> None:
        if gen != self._generation:
            return
        try:
            await self._run_action(action)
        except Exception as exc:
            msg = exc.message if isinstance(exc, Error) else str(exc)
            log.error("action %s failed: %s", type(action).__name__, msg)
            self._generation += 1  # drop the rest of this decision
            self.feed(ActionFailed(type(action).__name__, msg))

    async def _run_action(self, a: Action) -> None:
        m = self.actions
        if isinstance(a, RecordEpoch):
            await m.record_epoch(a.epoch, a.holder)
        elif isinstance(a, AskArbiter):
            pass  # sent with every arbiter heartbeat while view.request holds it
        elif isinstance(a, PrepareToLead):
            await m.prepare_to_lead(a.epoch)
        elif isinstance(a, OpenWrites):
            await m.open_writes(a.epoch, a.wait_for_backup)
        elif isinstance(a, StopWrites):
            await m.stop_writes(a.deposed, a.primary)
        elif isinstance(a, NotifyBecamePrimary):
            m.notify_hook("notify_become_primary", a.epoch)
        elif isinstance(a, NotifyBecomePrimaryFailed):
            m.notify_hook("notify_become_primary_failed", a.epoch, a.error)
        elif isinstance(a, FollowPrimary):
            await m.follow_primary(a.primary, a.epoch)
        elif isinstance(a, SendTakeOver):
            self._send_peer(p.PeerTakeOver(epoch=a.epoch))
        elif isinstance(a, BecomeFailoverMember):
            raise Error(
                "promoting a DR member to failover member needs a restart with the "
                "member's kind changed to 'failover' in the configuration"
            )

    # ------------------------------------------------------------ the peer

    def _send_peer(self, msg: Any) -> None:
        if self._peer_out is not None:
            self._peer_out.write(encode(msg))

    async def _peer_sender(self) -> None:
        peer = self.peer
        assert peer is not None
        hb = self.mirror.heartbeat_ms / 1000
        while True:
            try:
                _, writer = await self.dial(peer.host, peer.port, peer, hb * 4)
            except (OSError, TimeoutError):
                await asyncio.sleep(hb)
                continue
            self._peer_out = writer
            try:
                writer.write(
                    encode(
                        p.PeerHello(
                            version=p.PEER_VERSION,
                            mirror=self.mirror.name,
                            member=self.me.name,
                        )
                    )
                )
                while True:
                    b = heartbeat(self.agent.view)
                    writer.write(
                        encode(
                            p.PeerBeat(
                                state=b.state.value,
                                epoch=b.epoch,
                                holder=b.holder,
                                backup_active=b.backup_active,
                            )
                        )
                    )
                    await asyncio.wait_for(writer.drain(), hb * 4)
                    await asyncio.sleep(hb)
            except (OSError, TimeoutError, ConnectionError):
                pass
            finally:
                self._peer_out = None
                writer.close()
            await asyncio.sleep(hb)

    async def peer_inbound(
        self, reader: asyncio.StreamReader, decoder: FrameDecoder[Any], hello: p.PeerHello
    ) -> None:
        """Beats from the peer, on the connection it opened to us."""
        if hello.mirror != self.mirror.name or (
            self.peer is None or hello.member != self.peer.name
        ):
            self.event(
                "peer_refused",
                f"refused a peer connection from member "
                f"{hello.member!r} of mirror {hello.mirror!r}",
                "error",
            )
            return
        decoder.set_kind(p.FromPeer)
        try:
            while (msg := await read_message(decoder, reader.read, 65536)) is not None:
                self.heard_peer(msg)
        except (ConnectionError, Error, ValueError):
            pass
        # The peer's process closed its socket (or the link broke): lost at once.
        if self.view.peer_up:
            self.feed(PeerLost())

    def heard_peer(self, msg: p.PeerBeat | p.PeerTakeOver) -> None:
        """A message from the peer: it is alive now, and says what it is."""
        self._last_peer_beat = self.clock()
        if isinstance(msg, p.PeerBeat):
            self.feed(PeerHeartbeat(State(msg.state), msg.epoch, msg.holder, msg.backup_active))
        else:
            self.feed(TakeOverRequested(msg.epoch))

    async def _watchdog(self) -> None:
        hb = self.mirror.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(hb / 2)
            self.check_peer()

    def check_peer(self) -> None:
        """Peer silent for the QoS timeout: lost (the watchdog calls this twice a beat)."""
        qos = self.mirror.qos_timeout_ms / 1000
        if self.view.peer_up and self.clock() - self._last_peer_beat > qos:
            self.feed(PeerLost())

    # --------------------------------------------------------- the arbiter

    async def _arbiter_loop(self) -> None:
        cfg = self.mirror
        assert cfg.arbiter is not None
        qos = cfg.qos_timeout_ms / 1000
        hb = cfg.heartbeat_ms / 1000
        host, port = parse_address("mirror.arbiter", cfg.arbiter)
        client = ArbiterClient(
            cfg.arbiter,
            cfg.name,
            self.me.name,
            qos,
            opener=lambda: self.dial(host, port, None, qos),
        )
        self.arbiter = client
        self._arbiter_ok_sent = self.clock()
        try:
            while True:
                sent = self.clock()
                try:
                    report = await client.exchange(self.view.request)
                except Error as exc:
                    if self.clock() - self._arbiter_ok_sent > qos and not self._arbiter_lost_said:
                        self._arbiter_lost_said = True
                        self.event(
                            "arbiter_lost",
                            f"member {self.me.name} has no session with the arbiter: {exc.message}",
                            "warning",
                        )
                        self.feed(ArbiterLost())
                    await asyncio.sleep(hb / 2)
                    continue
                self._arbiter_ok_sent = sent
                self._arbiter_lost_said = False
                self.feed(report)
                await asyncio.sleep(max(0.0, hb - (self.clock() - sent)))
        finally:
            await client.close()

    # ------------------------------------------------------- commit path

    def ack_timeout(self) -> None:
        self.feed(AckTimeout())

    def backup_caught_up(self) -> None:
        self.feed(BackupCaughtUp())

    def newer_epoch(self, epoch: int, holder: str) -> None:
        if epoch > self.view.epoch:
            self.feed(NewerEpochSeen(epoch, holder))
