"""The member's components, as the wiring built them (:mod:`.wiring`).

Only the node package reads this record: the wiring fills it once, complete,
and the status report and the builders of the HTTP, metrics and canary ports
read the parts they name. No component receives it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from litemirror.config import Member
from litemirror.journal import Journal
from litemirror.server.front.connections import ClientConnections
from litemirror.server.ha.agent import FailoverAgent
from litemirror.server.ha.following import ReceiverLink
from litemirror.server.ha.transitions import Transitions
from litemirror.server.net.limits import LimitGuard
from litemirror.server.node.backup_scheduler import BackupScheduler
from litemirror.server.node.duties import MemberStateFile
from litemirror.server.node.live_config import LiveConfig
from litemirror.server.node.position import Position
from litemirror.server.ops.canary import Canary
from litemirror.server.ops.event_log import EventLog
from litemirror.server.ops.looplag import LoopLag
from litemirror.server.ops.notify import Notifier
from litemirror.server.ports import EventSink
from litemirror.server.role import RoleCell
from litemirror.server.storage.archiver import Archiver
from litemirror.server.storage.drills import BackupDrill
from litemirror.server.storage.horizon import Horizon
from litemirror.server.storage.importer import Importer
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.registry import Registry
from litemirror.server.stream.hub import Hub
from litemirror.server.stream.receiver import Receiver


@dataclass(frozen=True)
class Parts:
    config: LiveConfig
    me: Member
    #: The other failover member (None for a dr/reporting member or a lone member).
    peer: Member | None
    #: Wall-clock time the member started.
    started: float
    role: RoleCell
    transitions: Transitions
    agent: FailoverAgent | None
    events: EventLog
    #: Records an event (the event log's emit, as an EventSink).
    event: EventSink
    limits: LimitGuard
    loop_lag: LoopLag
    connections: ClientConnections
    journal: Journal
    writer: JournalWriter
    registry: Registry
    importer: Importer
    hub: Hub
    horizon: Horizon
    position: Position
    replica: ReceiverLink[Receiver]
    state_file: MemberStateFile
    canary: Canary
    notifier: Notifier
    executor: ThreadPoolExecutor
    read_executor: ThreadPoolExecutor
    decode_executor: ThreadPoolExecutor
    #: The journal archive (None without ``[archive]``).
    archiver: Archiver | None = None
    #: Scheduled backups (None without ``[backup] every`` or ``cron``).
    backup_scheduler: BackupScheduler | None = None
    #: Restore drills (``backup_verify``) and the last drill's outcome.
    backup_drill: BackupDrill | None = None
