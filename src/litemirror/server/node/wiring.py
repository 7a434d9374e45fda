"""The one place that builds a member: every component, given only what it uses.

:func:`build_member` opens the stores (data directory, state file, journal),
replays the journal up to the commit point, then constructs each component
in dependency order, complete, and hands the lot to the lifecycle
(:class:`~.member.MemberServer`), which starts listening and the background
tasks. No other module knows which object answers which port.

Order and its reasons:

1. the event log, the connection limits and the TLS setup (a refused start
   is still logged);
2. the stores, on a worker thread: a data directory of another member is
   refused before anything is written;
3. the journal writer, the horizon and the databases; recovery replays the
   journal into them up to the commit point;
4. the failover side: the transitions (the only writer of the role
   snapshot), the receiver link, the failover agent when there is an
   arbiter, and the commit hub, whose ack-timeout and caught-up signals go to
   the agent;
5. what clients and operators talk to: users, admin actions, the status, the
   session context, the metrics, the HTTP API's ports.

Three references run backwards (the hub signals the agent, the agent acts
through the transitions, the transitions' duties use the hub; the virtual IP
listens with the session context): each is a closure over a name bound
before anything runs (:meth:`MemberServer.start`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from litemirror.backup.keyfile import load_key
from litemirror.backup.sealed import Key
from litemirror.config import Config, Member
from litemirror.failover import Persisted, State
from litemirror.security.tls import setup as tls_setup
from litemirror.server.front.admin import Admin, DatabaseCreator
from litemirror.server.front.connections import ClientConnections
from litemirror.server.front.ports import SessionContext
from litemirror.server.front.users import Users
from litemirror.server.ha.admin_actions import FailoverAdminActions
from litemirror.server.ha.agent import FailoverAgent
from litemirror.server.ha.following import ReceiverLink
from litemirror.server.ha.hooks import Hooks
from litemirror.server.ha.promotion import Holding, Promotion
from litemirror.server.ha.starting import Starting
from litemirror.server.ha.transitions import Transitions
from litemirror.server.ha.vip import VirtualIP
from litemirror.server.ha.vip_holder import VipHolder
from litemirror.server.net.dial import Dialer
from litemirror.server.net.limits import LimitGuard
from litemirror.server.net.listener import Listener, error_frame, stream_factory
from litemirror.server.node.backup_scheduler import BackupScheduler
from litemirror.server.node.duties import MemberDuties, MemberStateFile
from litemirror.server.node.housekeeping import Housekeeping
from litemirror.server.node.live_config import LiveConfig
from litemirror.server.node.member import BackgroundTasks, MemberServer
from litemirror.server.node.metrics_sources import metrics_sources
from litemirror.server.node.ops_ports import canary_ports, http_ports, http_serving
from litemirror.server.node.parts import Parts
from litemirror.server.node.position import Position
from litemirror.server.node.status import MemberStatus
from litemirror.server.ops.canary import Canary
from litemirror.server.ops.event_log import EventLog
from litemirror.server.ops.http_api import start_http
from litemirror.server.ops.looplag import LoopLag
from litemirror.server.ops.metrics import Metrics
from litemirror.server.ops.notify import Notifier
from litemirror.server.role import Role, RoleCell, RoleSnapshot
from litemirror.server.storage.archiver import Archiver
from litemirror.server.storage.backups import BackupTaker
from litemirror.server.storage.drills import BackupDrill
from litemirror.server.storage.horizon import Horizon
from litemirror.server.storage.importer import Importer
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.recovery import recover
from litemirror.server.storage.registry import Registry
from litemirror.server.storage.scheduled_backups import ScheduledBackups
from litemirror.server.storage.statements import ShutdownFlag, StatementReports
from litemirror.server.storage.stores import open_stores
from litemirror.server.stream.hub import Hub
from litemirror.server.stream.ports import ReceiverPorts, SenderPorts
from litemirror.server.stream.receiver import Receiver
from litemirror.server.stream.sender import replica_server

log = logging.getLogger("litemirror.member")


def _key(path: str | Path | None, setting: str) -> Key | None:
    """The encryption key configured by ``setting`` (checked at load; read again here)."""
    return None if path is None else load_key(Path(path), setting)


def source_address(me: Member) -> tuple[str, int] | None:
    """Where this member's own connections to other members come from.

    A member listening on a specific address uses it as the source of the
    connections it opens, so peers (and firewalls, and the fault proxy in
    the tests) see which member is talking.
    """
    host = me.host
    if host in ("0.0.0.0", "::", "") or ":" in host:
        return None
    return (host, 0)


class _AgentGate:
    """The receiver's ``FailoverGate``: the failover agent's word, or always yes without one."""

    def __init__(self, agent: FailoverAgent | None) -> None:
        self._agent = agent

    def may_acknowledge(self) -> bool:
        """A backup acknowledges only while following (never while taking over)."""
        return self._agent is None or self._agent.may_acknowledge()

    def newer_epoch_seen(self, epoch: int, holder: str) -> None:
        if self._agent is not None:
            self._agent.newer_epoch(epoch, holder)


async def _status_of(mb: Member) -> dict[str, Any]:
    """Another member's status over the control protocol (blocking: on a thread)."""
    from litemirror.client.control import member_status

    return await asyncio.get_running_loop().run_in_executor(None, member_status, mb, 1.0)


async def build_member(config: Config, name: str) -> MemberServer:
    """Open the stores, replay the journal, build every component; nothing listens yet."""
    loop = asyncio.get_running_loop()
    me = config.member(name)
    started = time.time()
    events = EventLog(me.data_dir / "events.jsonl", me.name)

    def event(kind: str, message: str, severity: str = "info", **data: Any) -> None:
        events.emit(kind, message, severity, **data)

    def tls_refused(peer: str, reason: str) -> None:
        """A refused TLS peer; the same host and reason make one event a minute."""
        events.emit_limited(
            "tls_refused",
            ("tls", peer.rpartition(":")[0], reason),
            f"connection with {peer} refused: {reason}",
            "warning",
            peer=peer,
        )

    # TLS contexts (None without [tls]); SIGHUP reloads the files in place.
    live = LiveConfig(config, name, tls_setup(config, name), event)
    limits = LimitGuard(config, events, f"member {me.name}")
    if live.tls is not None and config.tls is not None:
        # This member's control calls to the others (their status) present its
        # certificate: they count as a member's link there, not as a stranger.
        from litemirror.client.credentials import ClientTls, use_tls

        cert, key = config.tls.files_for(me.name, me)
        use_tls(ClientTls(str(config.tls.ca), str(cert), str(key)))
    peers = [x for x in config.failover_members if x.name != me.name]
    peer = peers[0] if peers and me.kind == "failover" else None
    with_agent = config.mirror.arbiter is not None and me.kind in ("failover", "dr")
    stop = asyncio.Event()
    tasks = BackgroundTasks()
    stopping = ShutdownFlag()  # set at shutdown: every running client statement stops
    dialer = Dialer(live.tls, live, tls_refused, source_address(me))

    executor = ThreadPoolExecutor(max_workers=config.server.threads, thread_name_prefix="sqlite")
    # Reads apart: long reads cannot take the threads commits need.
    read_executor = ThreadPoolExecutor(
        max_workers=config.server.read_threads, thread_name_prefix="sqlite-read"
    )
    # Large client frames are decoded here, off the event loop (see front/session.py).
    decode_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")

    stores = await loop.run_in_executor(executor, open_stores, config, me)
    limits.install(loop)  # the data dir exists now: its event can be written
    journal = stores.journal
    limit = stores.replay_limit
    role = RoleCell(RoleSnapshot(epoch=stores.epoch))
    state_file = MemberStateFile(me.data_dir, stores.state, executor)
    # The receiver while following (started and stopped by the transitions).
    replica: ReceiverLink[Receiver] = ReceiverLink(lambda: new_receiver())
    horizon = Horizon(
        role=role,
        journal_last_lsn=lambda: journal.last_lsn,
        replica_applied=lambda: None if replica.receiver is None else replica.receiver.applied,
        saved=limit,
        recovered=limit,
    )
    jw = JournalWriter(journal, loop)
    jw.on_durable(horizon.records_durable)
    agent: FailoverAgent | None = None

    def ack_timeout() -> None:
        assert agent is not None
        agent.ack_timeout()

    def backup_caught_up() -> None:
        assert agent is not None
        agent.backup_caught_up()

    hub = Hub(
        backup=peer.name if peer else None,
        qos_timeout=config.mirror.qos_timeout_ms / 1000,
        last_lsn=lambda: journal.last_lsn,
        on_event=lambda kind, msg: event(kind, msg, "warning" if "inactive" in kind else "info"),
        on_ack_timeout=ack_timeout if with_agent else None,
        on_caught_up=backup_caught_up if with_agent else None,
        ack_level=config.mirror.ack,
        committed_lsn=limit,
    )
    jw.on_durable(hub.records_durable)
    registry = Registry(
        me.data_dir,
        executor=executor,
        journal=jw,
        epoch=lambda: role().epoch,
        server=config.server,
        on_commit=horizon.committed,
        replicate=hub.wait_for,
        ack=config.mirror.ack,
        writable=lambda: role().writable,
        sqlite=config.sqlite,
        read_executor=read_executor,
    )
    res = await loop.run_in_executor(executor, recover, journal, registry, stores.horizon, limit)
    if res.replayed or res.created:
        log.info(
            "recovery: scanned %d record(s), replayed %d, created %s",
            res.scanned,
            res.replayed,
            res.created or "none",
        )
    if journal.last_lsn > limit:
        log.info(
            "recovery: %d journal record(s) after the commit point (LSN %d) stay "
            "unapplied until the primary confirms them",
            journal.last_lsn - limit,
            limit,
        )
    missing_imports = res.missing_imports
    position = Position(
        me=me,
        role=role,
        receiver=lambda: replica.receiver,
        journal_last_lsn=lambda: journal.last_lsn,
        committed_lsn=lambda: hub.committed_lsn,
    )
    archiver: Archiver | None = None
    if config.archive is not None:
        archiver = Archiver(
            settings=config.archive,
            directory=config.archive.dir / config.mirror.name / me.name,
            segments=journal.segments,
            confirmed_lsn=position.confirmed_lsn,
            # Its own thread: a slow archive disk never holds SQLite or journal work.
            executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive"),
            event=event,
            failed=lambda message: events.emit_limited(
                "archive_failed", ("archive", me.name), message, "error"
            ),
            key=_key(config.archive.encrypt_key_file, "archive.encrypt_key_file"),
        )
    db_creator = DatabaseCreator(registry, jw, executor, lambda: role().epoch)
    importer = Importer(
        me=me,
        config=live,
        registry=registry,
        writer=jw,
        executor=executor,
        epoch=lambda: role().epoch,
    )

    # ------------------------------------------------------------ failover
    async def listen(host: str, port: int) -> asyncio.AbstractServer:
        """Serve clients, members and the CLI on host:port (TLS and plaintext told apart)."""
        tls = live.tls
        refusal = b""
        if tls is not None and tls.require:
            refusal = error_frame(
                f"member {me.name} accepts only TLS connections (tls.require); "
                "connect with TLS, e.g. litemirror://...?tls_ca=ca.crt"
            )

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await connections.serve(session_context, r, w)

        listener = Listener(
            stream_factory(on_client, 1024 * 1024),
            tls.server if tls is not None else None,
            tls is not None and tls.require,
            config.limits.handshake_timeout_s,
            plaintext_refusal=refusal,
            on_refused=tls_refused,
            what=f"member {me.name}",
            admission=limits.admission,
            on_limit=limits.refused,
        )
        return await listener.start(host, port)

    vip: VipHolder | None = None
    if config.mirror.vip is not None and me.vip_interface is not None:
        vip = VipHolder(
            VirtualIP(config.mirror.vip, me.vip_interface),
            listen=listen,
            host=me.host,
            port=me.port,
            interface=me.vip_interface,
            event=event,
        )
    transitions = Transitions(
        me=me,
        mirror=config.mirror.name,
        members=lambda: live().members,
        cell=role,
        duties=MemberDuties(
            member=me.name,
            journal=journal,
            writer=jw,
            registry=registry,
            hub=hub,
            executor=executor,
            horizon=horizon,
            databases=lambda: live().mirror.databases,
            create_database=db_creator.create,
        ),
        replica=replica,
        state_file=state_file,
        hooks=Hooks(config.hooks),
        vip=vip,
        event=event,
        current_horizon=horizon.current,
        keep=tasks.keep,
    )
    if with_agent:
        agent = FailoverAgent(
            me=me,
            peer=peer,
            mirror=config.mirror,
            persisted=Persisted(stores.state.epoch, stores.state.last_primary),
            actions=transitions,
            dial=dialer,
            event=event,
        )
    starting = Starting(
        me=me,
        peer=peer,
        config=live,
        has_agent=agent is not None,
        role=role,
        state_file=state_file,
        transitions=transitions,
        status_of=_status_of,
        spawn=tasks.spawn,
        stopped=stop.is_set,
        event=event,
        describe=lambda: (
            f"member {me.name} of mirror {config.mirror.name} is {role().role} at "
            f"{me.address} (epoch {role().epoch}, LSN {journal.last_lsn}, "
            f"{len(registry.names())} database(s))"
        ),
    )

    def holding() -> Holding:
        """What this member holds and last heard of the primary (for a forced promote)."""
        rcv = replica.receiver
        primary = rcv.primary.name if rcv is not None and rcv.primary is not None else None
        return Holding(
            member=me.name,
            lsn=journal.last_lsn,
            primary=primary or stores.state.last_primary,
            primary_lsn=rcv.primary_lsn if rcv is not None and rcv.primary_lsn else None,
            last_contact_s=round(time.monotonic() - rcv.last_contact, 1)
            if rcv is not None and rcv.last_contact
            else None,
            active_backup=agent is not None and agent.state is State.BACKUP_ACTIVE,
        )

    promotion = Promotion(
        me=me,
        role=role,
        transitions=transitions,
        agent=agent,
        holding=holding,
        leader=starting.leader,
        journal_epoch=lambda: journal.last_epoch,
        event=event,
        watch_for_newer_primary=starting.watch_for_newer_primary,
    )

    # ---------------------------------------------------------- operations
    notifier = Notifier(config.notify, config.mirror.name, events.subscribe, event)
    loop_lag = LoopLag()
    connections = ClientConnections()
    canary = Canary(
        config.canary,
        canary_ports(me=me, role=role, event=event, writer=jw, hub=hub, ack=config.mirror.ack),
    )

    def receiver_note_epoch(epoch: int) -> None:
        # With a failover agent the epoch is the agent's to record.
        if agent is None:
            transitions.note_epoch(epoch)

    receiver_ports = ReceiverPorts(
        config=live,
        me=me,
        role=role,
        event=event,
        executor=executor,
        journal=journal,
        registry=registry,
        failover=_AgentGate(agent),
        note_epoch=receiver_note_epoch,
        dial=lambda target: dialer(target.host, target.port, target),
        status_of=_status_of,
        marker_applied=canary.marker_applied,
    )

    def new_receiver() -> Receiver:
        """A receiver to follow the primary from the current commit point."""
        return Receiver(receiver_ports, hub.committed_lsn, missing_imports)

    def drill_checksums(db: str) -> tuple[int, dict[str, str]] | None:
        """This member's own (meta LSN, table checksums) of ``db``, from one snapshot."""
        from litemirror.server.front.admin import checksums_of

        return checksums_of(registry.path(db), stopping) if registry.exists(db) else None

    drill_keys = [
        _key(config.backup.encrypt_key_file, "backup.encrypt_key_file"),
        None
        if config.archive is None
        else _key(config.archive.encrypt_key_file, "archive.encrypt_key_file"),
    ]
    drill = BackupDrill(
        mirror=config.mirror.name,
        member=me.name,
        root=config.backup.root(me),
        scratch=me.data_dir / "backup-scratch",
        state_file=me.data_dir / "backup-drill.json",
        keys={k.id: k for k in drill_keys if k is not None},
        archive=None if config.archive is None else config.archive.dir,
        member_checksums=drill_checksums,
        # Its own thread: a drill restores whole databases and must not hold reads.
        executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="drill"),
        event=event,
    )
    backups = ScheduledBackups(
        drill=drill,
        taker=BackupTaker(
            mirror=config.mirror.name,
            member=me.name,
            root=config.backup.root(me),
            names=registry.names,
            path_of=registry.path,
            read_executor=read_executor,
            journal_lsn=lambda: journal.last_lsn,
            epoch=lambda: role().epoch,
            event=event,
            stopping=stopping,
            key=_key(config.backup.encrypt_key_file, "backup.encrypt_key_file"),
            scratch=me.data_dir / "backup-scratch",
        ),
        read_executor=read_executor,
        event=event,
    )
    backup_scheduler: BackupScheduler | None = None
    if config.backup.scheduled:

        async def call_member(mb: Member, action: str, args: dict[str, Any]) -> dict[str, Any]:
            """An admin action on another member (blocking: on a thread)."""
            from litemirror.client.control import call
            from litemirror.protocol.messages import AdminRequest

            request = AdminRequest(id=1, action=action, args=args)
            return await loop.run_in_executor(
                None, lambda: call(mb.host, mb.port, request, timeout=config.backup.timeout_s)
            )

        backup_scheduler = BackupScheduler(
            settings=config.backup,
            me=me,
            members=lambda: live().members,
            is_primary=lambda: role().role is Role.PRIMARY and role().writable,
            # The status is built below; the closure reads it only once running.
            primary_status=lambda: status.status(),
            local=backups,
            call_member=call_member,
            event=event,
        )

    parts = Parts(
        config=live,
        me=me,
        peer=peer,
        started=started,
        role=role,
        transitions=transitions,
        agent=agent,
        events=events,
        event=event,
        limits=limits,
        loop_lag=loop_lag,
        connections=connections,
        journal=journal,
        writer=jw,
        registry=registry,
        importer=importer,
        hub=hub,
        horizon=horizon,
        position=position,
        replica=replica,
        state_file=state_file,
        canary=canary,
        notifier=notifier,
        executor=executor,
        read_executor=read_executor,
        decode_executor=decode_executor,
        archiver=archiver,
        backup_scheduler=backup_scheduler,
        backup_drill=drill,
    )

    # --------------------------------------------------- clients, operators
    users = Users(
        config=live,
        me=me,
        databases=registry,
        create_database=db_creator.create,
        event=event,
        events=events,
        primary_address=lambda: position.primary_address,
    )
    admin = Admin(
        me=me,
        role=role,
        primary_address=lambda: position.primary_address,
        registry=registry,
        databases=db_creator,
        import_database=importer.run,
        users=users,
        failover=FailoverAdminActions(
            me=me,
            peer=peer,
            agent=agent,
            promotion=promotion,
            role=role,
            primary_address=lambda: position.primary_address,
            replica_link=hub.links.get,
            journal_last_lsn=lambda: journal.last_lsn,
            receiver=lambda: replica.receiver,
            event=event,
        ),
        journal_switch=lambda: jw.call(lambda j: j.switch()),
        wait_applied=position.wait_applied,
        applied_lsn=lambda: position.applied_lsn,
        read_wait_s=config.limits.read_wait_s,
        read_executor=read_executor,
        stopping=stopping,
        backups=backups,
    )
    status = MemberStatus(parts)
    metrics = Metrics(metrics_sources(parts))
    session_context = SessionContext(
        config=live,
        me=me,
        role=role,
        primary_address=lambda: position.primary_address,
        last_lsn=lambda: journal.last_lsn,
        applied_lsn=lambda: position.applied_lsn,
        wait_applied=position.wait_applied,
        databases=registry,
        users=users,
        admin=admin,
        status=status,
        limits=limits,
        observe_commit=metrics.observe_commit,
        statement_finished=StatementReports(event, config.statements.slow_s).finished,
        stopping=stopping,
        read_executor=read_executor,
        decode_executor=decode_executor,
        session_opened=connections.session_opened,
        tls_refused=tls_refused,
        serve_replica=replica_server(
            SenderPorts(
                config=live,
                me=me,
                role=role,
                event=event,
                executor=executor,
                journal=journal,
                registry=registry,
                hub=hub,
                current_horizon=horizon.current,
                reload_config=live.reload_members,
                importing=importer.importing.__contains__,
            )
        ),
        peer_inbound=agent.peer_inbound if agent is not None else None,
    )
    http = http_ports(parts, status=status, admin=admin, users=users, metrics=metrics)
    serving = http_serving(parts, tls_refused=tls_refused, spawn=tasks.keep)
    housekeeping = Housekeeping(
        me=me,
        config=live,
        role=role,
        journal=journal,
        horizon=horizon,
        position=position,
        state_file=state_file,
        sweep=registry.sweep,
        events=events,
        durable_elsewhere=lambda member: hub.known.get(member, 0),
        purge_with_writer=lambda lsn: jw.call(lambda j: j.purge_before(lsn)),
        purge_with_receiver=lambda: (
            None if replica.receiver is None else replica.receiver.journal_thread
        ),
        archiver=archiver,
    )
    return MemberServer(
        parts=parts,
        listen=listen,
        start_http=lambda: start_http(http, serving),
        starting=starting if agent is None or me.kind != "failover" else None,
        housekeeping=housekeeping,
        tasks=tasks,
        stop=stop,
        stopping=stopping,
    )


async def run_member(config: Config, member: str) -> int:
    """``litemirror serve``: build the member, start it, serve until a signal."""
    from litemirror.errors import Error

    try:
        server = await build_member(config, member)
        await server.start()
    except Error as exc:
        log.error("cannot start member %s: %s", member, exc.message)
        return 2
    except OSError as exc:
        log.error("cannot start member %s: %s", member, exc)
        return 2
    await server.serve_forever()
    return 0
