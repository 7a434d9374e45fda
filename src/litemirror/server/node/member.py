"""The member process: ``litemirror serve --config F --member NAME``.

Start-up order matters for durability: open the journal (truncating a torn
tail), replay what the databases miss, create configured databases that do
not exist yet (journalled, so backups learn of them), and only then listen.
Shutdown (SIGTERM/SIGINT) stops accepting, lets running groups finish,
closes the databases, and records a clean shutdown and the horizon.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import msgspec

from litemirror.config import Config, Member
from litemirror.config import load as load_config
from litemirror.errors import ConfigError, Error
from litemirror.failover import Persisted, State
from litemirror.failover.start import PeerStatus, StartFacts, StartRole, decide_start
from litemirror.journal import Journal, RecordKind
from litemirror.replication.commit import startup_limit
from litemirror.replication.purge import plan_purge
from litemirror.security.tls import TlsSetup, certificate_info
from litemirror.security.tls import reload as reload_tls
from litemirror.security.tls import setup as tls_setup
from litemirror.security.visibility import audience_of, status_view
from litemirror.server.front.admin import Admin, DatabaseCreator
from litemirror.server.front.ports import SessionContext
from litemirror.server.front.session import ClientSession
from litemirror.server.front.users import Principal, Users
from litemirror.server.ha.agent import FailoverAgent
from litemirror.server.ha.following import ReceiverLink
from litemirror.server.ha.hooks import Hooks
from litemirror.server.ha.promotion import Holding, Promotion
from litemirror.server.ha.transitions import Transitions
from litemirror.server.ha.vip import VirtualIP
from litemirror.server.ha.vip_holder import VipHolder
from litemirror.server.net.dial import Dialer
from litemirror.server.net.limits import LimitGuard
from litemirror.server.net.listener import Listener, error_frame, stream_factory
from litemirror.server.node.failover_actions import MemberFailoverActions
from litemirror.server.node.ha_ports import MemberDuties, MemberStateFile
from litemirror.server.node.metrics_sources import metrics_sources
from litemirror.server.node.ops_ports import canary_ports, http_ports, http_serving
from litemirror.server.ops.canary import Canary
from litemirror.server.ops.canary import status_fields as canary_status_fields
from litemirror.server.ops.event_log import EventLog
from litemirror.server.ops.looplag import LoopLag
from litemirror.server.ops.metrics import Metrics
from litemirror.server.role import Role, RoleCell
from litemirror.server.storage.importer import import_database
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.member_state import MemberState, load_state, save_state
from litemirror.server.storage.recovery import recover
from litemirror.server.storage.registry import Registry
from litemirror.server.storage.statements import ShutdownFlag, StatementReports
from litemirror.server.stream.hub import Hub
from litemirror.server.stream.ports import ReceiverPorts, SenderPorts
from litemirror.server.stream.receiver import Receiver
from litemirror.server.stream.sender import replica_server

log = logging.getLogger("litemirror.member")


class MemberServer:
    def __init__(self, config: Config, member: str) -> None:
        self.config = config
        self.me: Member = config.member(member)
        #: Role, state, epoch, writability and reason, replaced as one snapshot.
        self.role_cell = RoleCell()
        self.started = time.time()
        self._inflight: set[int] = set()
        #: Highest LSN this event loop has been told is durable (see current_horizon).
        self._seen_lsn = 0
        self._horizon = 0
        self._server: asyncio.AbstractServer | None = None
        #: TLS contexts; None without a [tls] section. Read once at start:
        #: a rotated certificate is picked up by a restart.
        self.tls: TlsSetup | None = tls_setup(config, member)
        self.tls_certificate = certificate_info(config, member)
        #: Opens this member's connections to the others and the arbiter (TLS-checked).
        self.dialer = Dialer(self.tls, lambda: self.config, self.tls_refused, self.source_address())
        self._stop = asyncio.Event()
        self._connections = 0
        self._by_host: collections.Counter[str] = collections.Counter()
        #: Database sessions opened since start, per client address.
        self.sessions_by_host: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.agent: FailoverAgent | None = None
        self.hooks = Hooks(config.hooks)
        vip: VipHolder | None = None
        if config.mirror.vip is not None and self.me.vip_interface is not None:
            vip = VipHolder(
                VirtualIP(config.mirror.vip, self.me.vip_interface),
                listen=self.listen,
                host=self.me.host,
                port=self.me.port,
                interface=self.me.vip_interface,
                event=self.event,
            )
        #: The receiver while following (started and stopped by the transitions).
        self._replica: ReceiverLink[Receiver] = ReceiverLink(self._new_receiver)
        self.transitions = Transitions(
            me=self.me,
            mirror=config.mirror.name,
            members=lambda: self.config.members,
            cell=self.role_cell,
            duties=MemberDuties(self),
            replica=self._replica,
            state_file=MemberStateFile(self),
            hooks=self.hooks,
            vip=vip,
            event=self.event,
            current_horizon=self.current_horizon,
            keep=self.spawned,
        )
        self._http: asyncio.AbstractServer | None = None
        #: Called with each commit's latency in seconds, as seen by the member
        #: (one-shot write: from arrival to answer; transaction: its COMMIT).
        self.commit_observers: list[Callable[[float], None]] = []
        self._missing_imports: list[str] = []
        #: Databases being imported with `db add --from` right now.
        self.importing: set[str] = set()
        self.events = EventLog(self.me.data_dir / "events.jsonl", self.me.name)
        #: Who holds which connection, caps fitted to the descriptor limit, refusals as events.
        self.limits = LimitGuard(config, self.events, f"member {self.me.name}")
        #: Set at shutdown: every running client statement stops (see .statements).
        self.stopping = ShutdownFlag()
        self.statement_reports = StatementReports(self.event, config.statements.slow_s)
        self.loop_lag = LoopLag()
        peers = [x for x in config.failover_members if x.name != self.me.name]
        self.peer: Member | None = peers[0] if peers and self.me.kind == "failover" else None

    # The role snapshot's fields, read one by one (readers that take a RoleView call
    # role_cell instead). Only the transitions write them.
    @property
    def role(self) -> Role:
        return self.role_cell().role

    @property
    def state(self) -> str:
        return self.role_cell().state

    @property
    def epoch(self) -> int:
        return self.role_cell().epoch

    def note_epoch(self, epoch: int) -> None:
        """The epoch heard from the primary (without a failover agent)."""
        self.transitions.note_epoch(epoch)

    @property
    def writable(self) -> bool:
        return self.role_cell().writable

    @property
    def role_reason(self) -> str:
        return self.role_cell().reason

    @property
    def receiver(self) -> Receiver | None:
        """The receiver while this member follows a primary."""
        return self._replica.receiver

    def _new_receiver(self) -> Receiver:
        """A receiver to follow the primary from the current commit point."""
        return Receiver(self._receiver_ports, self.hub.committed_lsn, self._missing_imports)

    def may_acknowledge(self) -> bool:
        """A backup acknowledges only while following (never while taking over)."""
        return self.agent is None or self.agent.may_acknowledge()

    def newer_epoch_seen(self, epoch: int, holder: str) -> None:
        if self.agent is not None:
            self.agent.newer_epoch(epoch, holder)

    def observe_commit(self, seconds: float) -> None:
        for observe in self.commit_observers:
            observe(seconds)

    @property
    def state_file(self) -> MemberState:
        return self._state

    def event(self, kind: str, message: str, severity: str = "info", **data: Any) -> None:
        self.events.emit(kind, message, severity, **data)

    # --------------------------------------------------------------- facts

    def source_address(self) -> tuple[str, int] | None:
        """Where this member's own connections to other members come from.

        A member listening on a specific address uses it as the source of the
        connections it opens, so peers (and firewalls, and the fault proxy in
        the tests) see which member is talking.
        """
        host = self.me.host
        if host in ("0.0.0.0", "::", "") or ":" in host:
            return None
        return (host, 0)

    @property
    def primary_address(self) -> str | None:
        if self.role == "primary":
            return self.me.address
        if self.receiver is not None and self.receiver.primary is not None:
            return self.receiver.primary.address
        return None

    @property
    def last_lsn(self) -> int:
        return self.journal.last_lsn

    def status(self, viewer: Principal | None = None) -> dict[str, Any]:
        """This member's status; as ``viewer`` may see it (security/visibility.py) when given."""
        if viewer is not None:
            recent = [msgspec.to_builtins(ev) for ev in list(self.events.recent)[-5:]]
            return status_view(self.status(), audience_of(viewer, self.config.auth.require), recent)
        j = self.journal
        segs = j.segments()
        out: dict[str, Any] = {
            "mirror": self.config.mirror.name,
            "member": self.me.name,
            "kind": self.me.kind,
            "address": self.me.address,
            "role": self.role,
            "state": self.state,
            "epoch": self.epoch,
            "lsn": j.last_lsn,
            "committed_lsn": self.confirmed_lsn(),
            "horizon": self._horizon,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            "databases": len(self.registry.names()),
            "open_databases": self.registry.open_count,
            "connections": self._connections,
            # How late the event loop runs a timer (heartbeats ride on it).
            "loop_lag_ms": self.loop_lag.status(),
            # Open connections (clients, members, CLI) per source address.
            "connections_by_host": dict(self._by_host),
            # Connections by what they showed themselves to be, refusals by limit, caps.
            "admission": self.limits.status(),
            # Database sessions opened since start, per client address.
            "sessions_by_host": dict(self.sessions_by_host),
            "tls": None
            if self.tls is None or self.tls_certificate is None
            else {
                "require": self.tls.require,
                **self.tls_certificate.status(datetime.now(UTC)),
            },
            "journal": {
                "segments": len(segs),
                "bytes": sum(s.size_bytes for s in segs),
                "first_lsn": j.first_lsn,
                "fsyncs": self.jw.fsyncs,
                "records": self.jw.records,
            },
            "commits": sum(d.commits for d in self.registry.open_databases()),
            "reason": self.role_reason,
            "last_primary": self._state.last_primary,
            "events": [ev.message for ev in list(self.events.recent)[-5:]],
        }
        if self.role == "primary":
            now_ms = int(time.time() * 1000)
            out["backup_active"] = self.hub.backup_active
            out["replicas"] = [
                {
                    "member": ln.member,
                    "kind": ln.kind,
                    "state": ln.state,
                    "received_lsn": ln.received,
                    "durable_lsn": ln.durable,
                    "applied_lsn": ln.applied,
                    "last_contact_s": round(time.monotonic() - ln.last_contact, 3),
                    "lag": self.hub.lag(ln, now_ms),
                    "seed_progress": [ln.seed_done, ln.seed_total] if ln.seed_total else None,
                    "compression": ln.compression,
                    "bytes_sent": ln.bytes_sent,
                }
                for ln in self.hub.links.values()
            ]
        out["writable"] = self.writable
        out["database_states"] = [
            {"name": db.name, "lsn": db.applied_lsn, "state": "open"}
            for db in self.registry.open_databases()
        ]
        out["arbiter"] = self.config.mirror.arbiter
        if self.agent is not None:
            v = self.agent.view
            out["failover"] = {
                "state": v.state.value,
                "epoch": v.epoch,
                "holder": v.holder,
                "peer_up": v.peer_up,
                "arbiter_up": v.arbiter_up,
                # Whom the arbiter said, in its last answer, it is in contact with.
                "arbiter_sees": sorted(v.arbiter_sees),
                # This member's own session with the arbiter.
                "arbiter_session": None
                if self.agent.arbiter is None
                else self.agent.arbiter.session(),
                "backup_active": v.backup_active,
                # The arbiter's record as of its last answer: a backup takes over only
                # while it says the backup is active (asking is not enough).
                "arbiter_record": None
                if v.arbiter is None
                else {
                    "epoch": v.arbiter.epoch,
                    "holder": v.arbiter.holder,
                    "backup_active": v.arbiter.backup_active,
                },
                "decisions": self.agent.decisions[-5:],
            }
        out.update(canary_status_fields(self.canary, self.notifier))
        if self.receiver is not None:
            out["replication"] = self.receiver.status()
            if self.state not in ("fenced",):
                out["state"] = self.receiver.state
            if (
                self.agent is None
                and self.me.kind in ("failover", "dr")
                and self.receiver.primary_missing
            ):
                last = self._state.last_primary or "the primary"
                out["reason"] = (
                    f"no primary reachable (last: {last}); a mirror without an arbiter does "
                    f"not fail over by itself: if {last} is gone for good, run `litemirror "
                    f"promote --member {self.me.name} --force --config FILE` (it says what "
                    "may be lost first)"
                )
        return out

    # ------------------------------------------------------------- startup

    def _startup_blocking(self) -> None:
        data = self.me.data_dir
        data.mkdir(parents=True, exist_ok=True)
        st = load_state(data)
        if st is not None and (st.mirror != self.config.mirror.name or st.member != self.me.name):
            raise ConfigError(
                f"data_dir {str(data)!r} belongs to member {st.member!r} of mirror "
                f"{st.mirror!r}, not {self.me.name!r} of {self.config.mirror.name!r}; "
                "point data_dir elsewhere"
            )
        self.journal = Journal.open(
            data / "journal", segment_bytes=self.config.journal.segment_bytes
        )
        rep = self.journal.recovery
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
        floor = 0 if self.config.mirror.arbiter is not None else 1
        self.transitions.note_epoch(max(self.journal.last_epoch, st.epoch if st else floor, floor))
        # Records after the recorded commit point may not have survived a failover
        # that happened while this member was down: replay only up to it.
        self._replay_limit = startup_limit(self.journal.last_lsn, st.confirmed if st else None)
        self._horizon = min(st.horizon, self._replay_limit) if st else 0
        self._state = MemberState(
            mirror=self.config.mirror.name,
            member=self.me.name,
            horizon=self._horizon,
            epoch=self.epoch,
            last_role=st.last_role if st else None,
            last_primary=st.last_primary if st else None,
            confirmed=self._replay_limit,
        )
        save_state(data, self._state)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.tls is not None and self.config.tls is not None:
            # This member's control calls to the others (their status) present its
            # certificate: they count as a member's link there, not as a stranger.
            from litemirror.client.credentials import ClientTls, use_tls

            cert, key = self.config.tls.files_for(self.me.name, self.me)
            use_tls(ClientTls(str(self.config.tls.ca), str(cert), str(key)))
        self.executor = ThreadPoolExecutor(
            max_workers=self.config.server.threads, thread_name_prefix="sqlite"
        )
        # Reads apart: long reads cannot take the threads commits need.
        self.read_executor = ThreadPoolExecutor(
            max_workers=self.config.server.read_threads, thread_name_prefix="sqlite-read"
        )
        # Large client frames are decoded here, off the event loop (see session.py).
        self.decode_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
        await loop.run_in_executor(self.executor, self._startup_blocking)
        self.limits.install(loop)  # the data dir exists now: its event can be written
        self.jw = JournalWriter(self.journal, loop)
        self.jw.on_durable(self._records_durable)
        self.registry = Registry(
            self.me.data_dir,
            executor=self.executor,
            journal=self.jw,
            epoch=lambda: self.epoch,
            server=self.config.server,
            on_commit=self._committed,
            replicate=self._replicate,
            ack=self.config.mirror.ack,
            writable=lambda: self.writable,
            sqlite=self.config.sqlite,
            read_executor=self.read_executor,
        )
        self.db_creator = DatabaseCreator(self.registry, self.jw, self.executor, lambda: self.epoch)
        self.users = Users(
            config=lambda: self.config,
            me=self.me,
            databases=self.registry,
            create_database=self.db_creator.create,
            event=self.event,
            events=self.events,
            primary_address=lambda: self.primary_address,
        )
        self.admin_actions = Admin(
            me=self.me,
            role=self.role_cell,
            primary_address=lambda: self.primary_address,
            registry=self.registry,
            databases=self.db_creator,
            import_database=lambda name, src: import_database(self, name, src),
            users=self.users,
            failover=MemberFailoverActions(self),
            journal_switch=lambda: self.jw.call(lambda j: j.switch()),
            wait_applied=self.wait_applied,
            applied_lsn=lambda: self.applied_lsn,
            read_wait_s=self.config.limits.read_wait_s,
            read_executor=self.read_executor,
            stopping=self.stopping,
        )
        limit = self._replay_limit
        res = await loop.run_in_executor(
            self.executor, recover, self.journal, self.registry, self._horizon, limit
        )
        if res.replayed or res.created:
            log.info(
                "recovery: scanned %d record(s), replayed %d, created %s",
                res.scanned,
                res.replayed,
                res.created or "none",
            )
        if self.journal.last_lsn > limit:
            log.info(
                "recovery: %d journal record(s) after the commit point (LSN %d) stay "
                "unapplied until the primary confirms them",
                self.journal.last_lsn - limit,
                limit,
            )
        self._horizon = limit
        self._seen_lsn = limit  # recovered: all of it up to the limit is in the databases
        self._missing_imports = res.missing_imports
        if self.config.mirror.arbiter is not None and self.me.kind in ("failover", "dr"):
            self.agent = FailoverAgent(
                me=self.me,
                peer=self.peer,
                mirror=self.config.mirror,
                persisted=Persisted(self._state.epoch, self._state.last_primary),
                actions=self.transitions,
                dial=self.dialer,
                event=self.event,
            )
        self.hub = Hub(
            backup=self.peer.name if self.peer else None,
            qos_timeout=self.config.mirror.qos_timeout_ms / 1000,
            last_lsn=lambda: self.journal.last_lsn,
            on_event=lambda kind, msg: self.event(
                kind, msg, "warning" if "inactive" in kind else "info"
            ),
            on_ack_timeout=self.agent.ack_timeout if self.agent is not None else None,
            on_caught_up=self.agent.backup_caught_up if self.agent is not None else None,
            ack_level=self.config.mirror.ack,
            committed_lsn=limit,
        )
        from litemirror.server.ops.notify import Notifier

        # Before the ports: the receiver tells the canary of markers, status reads both.
        self.notifier = Notifier(
            self.config.notify, self.config.mirror.name, self.events.subscribe, self.event
        )
        self.canary = Canary(self.config.canary, canary_ports(self))
        self._build_stream_ports()
        self.jw.on_durable(self.hub.records_durable)
        self.promotion = Promotion(
            me=self.me,
            role=self.role_cell,
            transitions=self.transitions,
            agent=self.agent,
            holding=self._holding,
            leader=self._leader,
            journal_epoch=lambda: self.journal.last_epoch,
            event=self.event,
            watch_for_newer_primary=self.watch_for_newer_primary,
        )
        agent = self.agent
        self.session_context = SessionContext(
            config=lambda: self.config,
            me=self.me,
            role=self.role_cell,
            primary_address=lambda: self.primary_address,
            last_lsn=lambda: self.last_lsn,
            applied_lsn=lambda: self.applied_lsn,
            wait_applied=self.wait_applied,
            databases=self.registry,
            users=self.users,
            admin=self.admin_actions,
            status=self,
            limits=self.limits,
            observe_commit=self.observe_commit,
            statement_finished=self.statement_reports.finished,
            stopping=self.stopping,
            read_executor=self.read_executor,
            decode_executor=self.decode_executor,
            session_opened=lambda host: self.sessions_by_host.update((host,)),
            tls_refused=self.tls_refused,
            serve_replica=self.serve_replica,
            peer_inbound=agent.peer_inbound if agent is not None else None,
        )
        self.transitions.start_deciding()
        # Listen first: the other failover member may need our status to
        # decide its own role, and operators want `status` to answer.
        self._server = await self.listen(self.me.host, self.me.port)
        from litemirror.server.ops.http_api import start_http

        self.metrics = Metrics(metrics_sources(self))
        self.commit_observers.append(self.metrics.observe_commit)
        self._http = await start_http(http_ports(self), http_serving(self))
        self.notifier.start()
        self.canary.start()
        self._spawn(self._housekeeping())
        self._spawn(self.loop_lag.run(self._stop))
        if self.agent is not None:
            self._spawn(self.agent.run())
        if self.agent is None or self.me.kind != "failover":
            self._spawn(self._take_role())

    def _build_stream_ports(self) -> None:
        """What the replication components use (server/stream/ports.py)."""
        self.serve_replica = replica_server(
            SenderPorts(
                config=lambda: self.config,
                me=self.me,
                role=self.role_cell,
                event=self.event,
                executor=self.executor,
                journal=self.journal,
                registry=self.registry,
                hub=self.hub,
                current_horizon=self.current_horizon,
                reload_config=self.reload_config,
                importing=self.importing.__contains__,
            )
        )
        self._receiver_ports = ReceiverPorts(
            config=lambda: self.config,
            me=self.me,
            role=self.role_cell,
            event=self.event,
            executor=self.executor,
            journal=self.journal,
            registry=self.registry,
            failover=self,
            note_epoch=self._note_epoch,
            dial=lambda target: self.dialer(target.host, target.port, target),
            status_of=self._status_of,
            marker_applied=self.canary.marker_applied,
        )

    def _note_epoch(self, epoch: int) -> None:
        # With a failover agent the epoch is the agent's to record.
        if self.agent is None:
            self.note_epoch(epoch)

    async def _status_of(self, mb: Member) -> dict[str, Any]:
        from litemirror.client.control import member_status

        return await asyncio.get_running_loop().run_in_executor(None, member_status, mb, 1.0)

    async def statuses(self) -> tuple[PeerStatus | None, PeerStatus | None]:
        """(what the other failover member says of itself, the member that says it is
        primary at the newest epoch); None where unreachable or nobody."""
        peer: PeerStatus | None = None
        leader: PeerStatus | None = None
        for mb in self.config.members:
            if mb.name == self.me.name or mb.kind == "reporting":
                continue
            st = await self._status_of(mb)
            if st.get("role") in (None, "down"):
                continue
            ps = PeerStatus(str(st.get("role")), int(st.get("epoch") or 0), mb.name)
            if self.peer is not None and mb.name == self.peer.name:
                peer = ps
            if ps.role == "primary" and (leader is None or ps.epoch > leader.epoch):
                leader = ps
        return peer, leader

    async def _leader(self) -> PeerStatus | None:
        return (await self.statuses())[1]

    def _holding(self) -> Holding:
        """What this member holds and last heard of the primary (for a forced promote)."""
        rcv = self.receiver
        primary = rcv.primary.name if rcv is not None and rcv.primary is not None else None
        return Holding(
            member=self.me.name,
            lsn=self.journal.last_lsn,
            primary=primary or self._state.last_primary,
            primary_lsn=rcv.primary_lsn if rcv is not None and rcv.primary_lsn else None,
            last_contact_s=round(time.monotonic() - rcv.last_contact, 1)
            if rcv is not None and rcv.last_contact
            else None,
            active_backup=self.agent is not None and self.agent.state is State.BACKUP_ACTIVE,
        )

    async def _take_role(self) -> None:
        said = ""
        while not self._stop.is_set():
            peer, leader = await self.statuses()
            decision = decide_start(
                StartFacts(
                    me=self.me.name,
                    kind=self.me.kind,
                    first_failover=self.config.failover_members[0].name,
                    peer=self.peer.name if self.peer else None,
                    arbiter=self.agent is not None,
                    last_role=self._state.last_role,
                    epoch=self.epoch,
                    peer_status=peer,
                    leader=leader,
                )
            )
            self.transitions.note_reason(decision.reason)
            if decision.role is not StartRole.WAITING:
                await self._become(decision.role.value, decision.reason)
                if decision.role is StartRole.PRIMARY:
                    self.watch_for_newer_primary()
                return
            if decision.reason != said:
                said = decision.reason
                self.event("waiting", decision.reason, "warning")
            await asyncio.sleep(0.5)

    def watch_for_newer_primary(self) -> None:
        """Without an arbiter, a primary steps down when it sees a newer one."""
        if self.agent is None:
            self._spawn(self._watch_peer())

    async def _watch_peer(self) -> None:
        """Without an arbiter: step down when another member leads at a newer epoch.

        Another member leads at a newer epoch only after an operator promoted it
        (``promote --force``) while this member was unreachable from it; from
        the moment this member hears of it, it stops writing and rejoins as
        backup (its records the new primary never had are rolled back and kept).
        """
        while not self._stop.is_set() and self.role == "primary" and self.agent is None:
            _, lead = await self.statuses()
            if lead is not None and lead.epoch > self.epoch:
                reason = (
                    f"demoting myself: {lead.name} is primary at epoch {lead.epoch}, newer "
                    f"than my epoch {self.epoch}; I will rejoin as its backup"
                )
                self.transitions.note_reason(reason)
                self.event("demoted", reason, "warning")
                await self.transitions.stop_writes(deposed=True, primary=lead.name)
                await self.transitions.record_epoch(lead.epoch, lead.name)
                await self.transitions.follow_primary(lead.name, lead.epoch)
                return
            await asyncio.sleep(self.config.mirror.heartbeat_ms / 1000 * 2)

    async def _become(self, role: str, reason: str) -> None:
        await self.transitions.take_start_role(Role(role), reason)
        log.info(
            "member %s of mirror %s is %s at %s (epoch %d, LSN %d, %d database(s))",
            self.me.name,
            self.config.mirror.name,
            self.role,
            self.me.address,
            self.epoch,
            self.journal.last_lsn,
            len(self.registry.names()),
        )

    async def _replicate(self, lsn: int, level: str) -> None:
        await self.hub.wait_for(lsn, level)

    async def apply_journal_tail(self) -> None:
        """Apply every journal record to the databases (this member's journal is the
        mirror's history from here on: it leads). Everything in it is committed
        once the member commits new records after it."""
        if self._seen_lsn >= self.journal.last_lsn:
            return
        res = await asyncio.get_running_loop().run_in_executor(
            self.executor, recover, self.journal, self.registry, self.current_horizon()
        )
        if res.replayed:
            log.info("applied %d journal record(s) before opening writes", res.replayed)
        self._seen_lsn = max(self._seen_lsn, self.journal.last_lsn)

    def confirmed_lsn(self) -> int:
        """This member's commit point (see replication/commit.py)."""
        if self.receiver is not None:
            return self.receiver.confirmed
        return self.hub.committed_lsn

    @property
    def applied_lsn(self) -> int:
        if self.receiver is not None:
            return self.receiver.applied
        return self.journal.last_lsn

    async def wait_applied(self, lsn: int, timeout: float) -> bool:
        """Read-your-writes on a non-primary: wait until ``lsn`` is applied here."""
        if self.role == "primary" or lsn <= 0:
            return True
        if self.receiver is None:
            return False
        return await self.receiver.wait_applied(lsn, timeout)

    def _spawn(self, coro: Any) -> None:
        self.spawned(asyncio.get_running_loop().create_task(coro))

    def spawned(self, task: asyncio.Task[Any]) -> None:
        """Keep a reference to a background task until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------- horizon

    def _records_durable(self, records: list[Any]) -> None:
        for r in records:
            if r.kind == RecordKind.CHANGES:
                self._inflight.add(r.lsn)
        if records:
            self._seen_lsn = max(self._seen_lsn, records[-1].lsn)

    def _committed(self, _db: str, lsn: int) -> None:
        self._inflight.discard(lsn)

    def current_horizon(self) -> int:
        """An LSN at or below which every journal record is committed in its database."""
        if self.receiver is not None:
            return self.receiver.applied
        if self.role != "primary":
            return self._horizon
        # Not journal.last_lsn: the journal thread advances it before this loop
        # hears of the new records (and adds them to _inflight), so in between
        # it would name records whose databases are not committed yet.
        seen = min(self._seen_lsn, self.journal.last_lsn)
        if self._inflight:
            return min(min(self._inflight) - 1, seen)
        return seen

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), 1.0)
            except TimeoutError:
                pass
            h = self.current_horizon()
            c = self.confirmed_lsn()
            if h != self._horizon or c != self._state.confirmed:
                self._horizon = h
                self._state.horizon = h
                self._state.confirmed = c
                try:
                    await loop.run_in_executor(
                        self.executor, save_state, self.me.data_dir, self._state
                    )
                except OSError as exc:
                    log.warning("could not save member state: %s", exc)
            await self.registry.sweep()
            self.events.flush()
            try:
                await self._purge_journal()
            except Error as exc:
                log.warning("journal purge failed: %s", exc.message)

    def _purge_plan(self) -> int:
        """The LSN below which closed journal segments may be deleted (0: none)."""
        return plan_purge(
            self.journal.segments(),
            primary=self.role == "primary",
            others_durable=[
                self.hub.known.get(mb.name, 0)
                for mb in self.config.members
                if mb.name != self.me.name
            ],
            last_lsn=self.last_lsn,
            applied_lsn=self.applied_lsn,
            limit_bytes=self.config.journal.max_retain_bytes,
        )

    async def _purge_journal(self) -> None:
        if self.role not in ("primary", "backup", "dr", "reporting"):
            return
        keep_from = self._purge_plan()
        if keep_from <= (self.journal.first_lsn or 0):
            return
        if self.receiver is not None:
            removed = await asyncio.get_running_loop().run_in_executor(
                self.receiver.journal_thread, self.journal.purge_before, keep_from
            )
        else:
            removed = cast(list[Any], await self.jw.call(lambda j: j.purge_before(keep_from)))
        if removed:
            self.event(
                "journal_purged", f"purged {len(removed)} journal segment(s) below LSN {keep_from}"
            )

    # ------------------------------------------------------------ clients

    async def listen(self, host: str, port: int) -> asyncio.AbstractServer:
        """Serve clients, members and the CLI on host:port (TLS and plaintext told apart)."""
        refusal = b""
        if self.tls is not None and self.tls.require:
            refusal = error_frame(
                f"member {self.me.name} accepts only TLS connections (tls.require); "
                "connect with TLS, e.g. litemirror://...?tls_ca=ca.crt"
            )
        listener = Listener(
            stream_factory(self.on_client, 1024 * 1024),
            self.tls.server if self.tls is not None else None,
            self.tls is not None and self.tls.require,
            self.config.limits.handshake_timeout_s,
            plaintext_refusal=refusal,
            on_refused=self.tls_refused,
            what=f"member {self.me.name}",
            admission=self.limits.admission,
            on_limit=self.limits.refused,
        )
        return await listener.start(host, port)

    def open_connections(self) -> int:
        """Client connections open now (metrics)."""
        return self._connections

    def tls_refused(self, peer: str, reason: str) -> None:
        """Log a refused TLS peer; the same host and reason make one event a minute."""
        self.events.emit_limited(
            "tls_refused",
            ("tls", peer.rpartition(":")[0], reason),
            f"connection with {peer} refused: {reason}",
            "warning",
            peer=peer,
        )

    async def on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self._by_host[host] += 1
        try:
            await ClientSession(self.session_context, reader, writer).run()
        except Exception:
            log.exception("client session failed")
        finally:
            self._connections -= 1
            self._by_host[host] -= 1
            if not self._by_host[host]:
                del self._by_host[host]

    # -------------------------------------------------------------- admin

    async def create_database(self, name: str) -> int:
        return await self.db_creator.create(name)

    async def admin(
        self, action: str, args: dict[str, Any], actor: Principal | None = None
    ) -> dict[str, Any]:
        """Run an admin action (``front/admin.py``); the caller checked that ``actor`` may."""
        return await self.admin_actions.run(action, args, actor)

    def reload_config(self) -> bool:
        """Re-read the config file (SIGHUP, or an unknown member connecting).

        Members may be added or removed while the mirror runs; everything
        else needs a restart and is reported, not applied. A config that does
        not validate is refused whole and the running one kept.
        """
        if self.config.path is None:
            return False
        try:
            new = load_config(self.config.path)
            new.member(self.me.name)
        except Error as exc:
            self.event("config_refused", f"config reload refused: {exc.message}", "error")
            return False
        if new.failover_members != self.config.failover_members:
            self.event(
                "config_refused",
                "config reload refused: the failover members "
                "changed; restart the members to change them",
                "error",
            )
            return False
        changed = {mb.name for mb in new.members} ^ {mb.name for mb in self.config.members}
        self.config = msgspec.structs.replace(self.config, members=new.members)
        if changed:
            self.event(
                "config_reloaded", f"members now: {', '.join(mb.name for mb in new.members)}"
            )
        return bool(changed)

    def on_sighup(self) -> None:
        """SIGHUP: re-read the config (members) and the TLS files (certificate rotation)."""
        self.reload_config()
        if self.config.path is None:
            return
        try:
            new = load_config(self.config.path)
            if self.tls is not None:
                reload_tls(self.tls, new, self.me.name)
                self.tls_certificate = certificate_info(new, self.me.name)
            elif new.tls is not None:
                self.event(
                    "config_refused",
                    "a [tls] section was added; restart the member to turn TLS on",
                    "warning",
                )
                return
            else:
                return
        except Error as exc:
            self.event("config_refused", f"TLS reload refused: {exc.message}", "error")
            return
        self.event(
            "tls_reloaded",
            "TLS certificate, key and CA reloaded: new connections present the new certificate",
        )

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.on_sighup)
        await self._stop.wait()
        log.info("member %s shutting down", self.me.name)
        bound = self.config.server.shutdown_timeout_s
        # A thread, not a task: it fires even if the loop itself is stuck.
        watchdog = threading.Timer(bound, _exit_now, (self.me.name, bound))
        watchdog.daemon = True
        watchdog.start()
        await self.shutdown()
        watchdog.cancel()

    async def shutdown(self) -> None:
        self._stop.set()
        # Running client statements stop at SQLite's next progress call.
        self.stopping.set = True
        if self._server is not None:
            self._server.close()
        if self._http is not None:
            self._http.close()
        await self.canary.stop()
        await self.notifier.close()
        await self.registry.close_all()
        self.jw.close()
        self.journal.close()
        self.events.close()
        self._state.horizon = self.current_horizon()
        self._state.confirmed = self.confirmed_lsn()
        self._state.clean_shutdown = True
        save_state(self.me.data_dir, self._state)
        self.executor.shutdown(wait=True)
        self.read_executor.shutdown(wait=True)
        self.decode_executor.shutdown(wait=False, cancel_futures=True)


def _exit_now(member: str, bound: float) -> None:
    """The shutdown outran server.shutdown_timeout_s: leave now (the journal is durable).

    Without the clean-shutdown mark the next start replays the journal's
    tail, as after a crash; nothing acknowledged is lost.
    """
    log.error(
        "member %s did not shut down within server.shutdown_timeout_s (%g s); exiting now",
        member,
        bound,
    )
    logging.shutdown()
    os._exit(3)


async def run_member(config: Config, member: str) -> int:
    try:
        server = MemberServer(config, member)
        await server.start()
    except Error as exc:
        log.error("cannot start member %s: %s", member, exc.message)
        return 2
    except OSError as exc:
        log.error("cannot start member %s: %s", member, exc)
        return 2
    await server.serve_forever()
    return 0
