"""Mirror configuration: defaults -> TOML file -> ``LITEMIRROR_*`` environment.

Built once, validated together, then frozen. Every error names the key and
the bad value. Example::

    [mirror]
    name = "demo"                 # 1-15 letters/digits
    databases = ["app"]           # created on first start if missing
    # arbiter = "127.0.0.1:7790"
    # vip = "10.77.0.100/24"      # virtual IP held by the primary
    [[members]]
    name = "a"
    address = "127.0.0.1:7701"
    data_dir = "data/a"
    kind = "failover"             # failover | dr | reporting
    # vip_interface = "eth0"      # needed on failover members when mirror.vip is set
    # [hooks]                     # docs/operations-hooks-vip.md
    # can_start_become_primary = "/etc/litemirror/can-start --strict"
    # check_become_primary_ok = "python:mysite.hooks:check"
    # timeout_s = 10.0
    # [tls]                       # docs/security.md
    # ca = "certs/ca.crt"
    # cert = "certs/members/{name}.crt"
    # key = "certs/members/{name}.key"
    # require = true
    # [auth]
    # require = true              # clients log in; roles read | write | admin
    # [sqlite]                    # docs/sql.md
    # foreign_keys = true         # enforce FOREIGN KEY constraints (default false)
    # [sqlite.databases.legacy]   # per-database override
    # foreign_keys = false
    # [statements]                # docs/security.md: what one request may cost
    # timeout_s = 30.0            # a longer statement is interrupted (0: no limit)
    # [statements.role_timeout_s]
    # admin = 600.0
    # [canary]                    # heartbeat through the whole pipeline
    # interval_s = 5.0            # 0: off
    # stale_after_s = 30.0
    # [notify]                    # docs/operations-events.md
    # [notify.email]
    # host = "smtp.example.com"
    # from = "litemirror@example.com"
    # to = ["oncall@example.com"]
    # [[notify.webhooks]]
    # url = "https://hooks.example.com/litemirror"

Environment overrides use ``LITEMIRROR_<SECTION>_<KEY>`` for scalar keys of
the ``mirror``, ``journal``, ``server``, ``limits``, ``tls``, ``auth``, ``sqlite`` and
``statements`` sections, e.g.
``LITEMIRROR_SERVER_THREADS=8``. Relative ``data_dir`` paths are resolved
against the directory holding the config file.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any, Literal

import msgspec

from litemirror.errors import ConfigError
from litemirror.security.roles import ROLES, USER_RE

#: Name patterns. Check names with ``fullmatch`` only: ``match`` lets "$" accept a
#: trailing newline, and "nl\n" would become a database nobody can open or remove
#: (tests/security/test_names.py keeps every caller to fullmatch).
NAME_RE = re.compile(r"^[A-Za-z0-9]{1,15}$")
MEMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
DB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

AckLevel = Literal["received", "durable", "applied"]
MemberKind = Literal["failover", "dr", "reporting"]
Compression = Literal["off", "on", "auto"]


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class MirrorSection(_Frozen, frozen=True):
    name: str
    databases: list[str] = []
    arbiter: str | None = None
    ack: AckLevel = "durable"
    qos_timeout_ms: int = 2000
    heartbeat_ms: int = 250
    #: Virtual IPv4 address with prefix ("10.77.0.100/24") that the primary
    #: holds on its ``vip_interface``; None: no virtual IP.
    vip: str | None = None


class MemberSection(_Frozen, frozen=True):
    name: str
    address: str
    data_dir: str
    kind: MemberKind = "failover"
    http: str | None = None
    #: Compress the replication stream to this member (zstd): "auto" compresses
    #: for dr members (often across a WAN) and not for the others.
    compression: Compression = "auto"
    #: Network interface that takes ``mirror.vip`` when this member is primary.
    vip_interface: str | None = None
    #: This member's certificate and key when they are not where ``tls.cert``
    #: and ``tls.key`` say.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: The certificate subject (RFC 4514, e.g. "CN=a,OU=member,O=litemirror")
    #: authorised to act as this member; default: CN = member name, OU = member.
    tls_subject: str | None = None


class TlsSection(_Frozen, frozen=True):
    """Mutual TLS for every port (see docs/security.md)."""

    #: CA certificate (or bundle of several) that every peer's certificate must chain to.
    ca: str | None = None
    #: Certificate and key of the process; ``{name}`` becomes the member's name
    #: (or ``arbiter`` for the arbiter): "certs/members/{name}.crt".
    cert: str | None = None
    key: str | None = None
    #: Refuse plaintext connections on the member, arbiter and HTTP ports.
    #: Member-to-member and member-to-arbiter traffic uses TLS whenever the
    #: section is configured, whatever this says.
    require: bool = False
    #: CN of the arbiter's certificate, checked by members when they dial it.
    arbiter_name: str = "arbiter"


class AuthSection(_Frozen, frozen=True):
    """Client authentication and roles (see docs/security.md)."""

    #: Clients must log in with a user's password or a client certificate
    #: mapped to a user; their role (read, write, admin) limits what they do.
    require: bool = False
    #: While no admin user exists, a connection from loopback may act as
    #: admin, so that the first ``litemirror user add`` can run.
    localhost_bootstrap: bool = True


class SqliteDatabaseSection(_Frozen, frozen=True):
    """``[sqlite.databases.NAME]``: settings of one database; unset keys follow ``[sqlite]``."""

    foreign_keys: bool | None = None


class SqliteSection(_Frozen, frozen=True):
    """How the member runs SQLite for client databases (see docs/sql.md)."""

    #: Enforce FOREIGN KEY constraints (``PRAGMA foreign_keys = ON`` on the
    #: writer and reader connections) in every database without an override.
    foreign_keys: bool = False
    #: Per-database overrides, by database name.
    databases: dict[str, SqliteDatabaseSection] = {}

    def foreign_keys_for(self, database: str) -> bool:
        """Whether ``database`` enforces foreign keys."""
        override = self.databases.get(database)
        if override is not None and override.foreign_keys is not None:
            return override.foreign_keys
        return self.foreign_keys


class JournalSection(_Frozen, frozen=True):
    #: Rotate to a new segment when the current one passes this size.
    segment_bytes: int = 64 * 1024 * 1024
    #: A closed segment is purged once every member has it; but when the
    #: journal grows past this size, the oldest segments go anyway and a
    #: member that still needed them is re-seeded with a base copy.
    max_retain_bytes: int = 1024 * 1024 * 1024


class ServerSection(_Frozen, frozen=True):
    #: Worker threads that run SQLite work for all databases.
    threads: int = 8
    #: Databases kept open at once; idle ones beyond this are closed (LRU).
    max_open_databases: int = 256
    #: Close a database's connections after this long without use.
    idle_close_s: float = 60.0
    #: Most transactions joined into one group commit.
    group_max: int = 512
    #: Reader connections per open database.
    readers_per_database: int = 2
    #: An open interactive transaction idle longer than this is rolled back.
    transaction_idle_timeout_s: float = 30.0
    #: Bearer token required by the HTTP admin endpoints; without one they accept
    #: requests from loopback only.
    http_token: str | None = None
    #: WAL pages before the writer checkpoints (PASSIVE).
    checkpoint_pages: int = 4000
    #: The only directory ``db add --from`` may read (symlinks resolved; files
    #: resolving outside it, and the member's own files, are refused). None:
    #: imports are off, because the member would otherwise read any SQLite file
    #: its OS user can, private ones and its own ``_system`` database included.
    #: Relative to the config file's directory; the config holds it absolute.
    import_dir: str | None = None
    #: Worker threads for reads (reader connections, checksums), apart from
    #: ``threads``: long reads cannot take the threads commits need.
    read_threads: int = 8
    #: SIGTERM/SIGINT stop the member within this many seconds whatever runs:
    #: running statements are interrupted, and past it the process exits anyway.
    shutdown_timeout_s: float = 10.0


class LimitsSection(_Frozen, frozen=True):
    """Sizes, connection caps and timeouts (docs/security.md, *Connections and resources*).

    Connections are counted by what they have shown themselves to be (see
    ``litemirror.security.admission``): still in their handshake, control
    connections without a login, logged-in clients, members' links, HTTP.
    Members' links are never refused by a cap.
    """

    max_frame_bytes: int = 128 * 1024 * 1024
    #: Connections of logged-in clients (members' links are not counted).
    #: A per-host or per-user cap above its overall cap acts as the overall cap.
    max_connections: int = 1024
    max_connections_per_host: int = 256
    max_connections_per_user: int = 512
    #: Connections that have not yet said Hello (TCP accepted, TLS handshake,
    #: first message); when all are taken, the oldest is closed for a newcomer.
    max_handshakes: int = 256
    max_handshakes_per_host: int = 64
    #: Control connections without a login (status and ping only).
    max_anonymous: int = 64
    max_anonymous_per_host: int = 8
    #: A connection without a login is closed this long after its Hello.
    anonymous_timeout_s: float = 10.0
    #: From accept to Hello, TLS handshake included.
    handshake_timeout_s: float = 5.0
    #: Connections to the HTTP port.
    http_max_connections: int = 256
    http_max_connections_per_host: int = 32
    #: An HTTP request's headers (and an idle keep-alive connection), then its
    #: body, must each arrive within this.
    http_timeout_s: float = 10.0
    #: Rows per Result frame when streaming a large result.
    result_chunk_rows: int = 2000
    #: How long a read with ``min_lsn`` waits for this member to apply that LSN.
    read_wait_s: float = 10.0
    #: A client connection that sends nothing for this long is closed (0: never).
    idle_timeout_s: float = 3600.0


class StatementsSection(_Frozen, frozen=True):
    """What one client request may cost the member (docs/security.md, "Statements")."""

    #: A statement (an executemany() call, a script) running longer than this
    #: is interrupted and fails alone with OperationalError; 0: no limit.
    timeout_s: float = 30.0
    #: Per role (read, write, admin): overrides ``timeout_s``; 0: no limit.
    role_timeout_s: dict[str, float] = {}
    #: Per user name: overrides the role's limit; 0: no limit.
    user_timeout_s: dict[str, float] = {}
    #: A statement running longer than this produces a ``slow_statement``
    #: event (at most one a minute per user and database); 0: none.
    slow_s: float = 5.0
    #: Largest request (frame) a read-only session may send: a user with the
    #: read role, a read_only connection, a connection without a database.
    read_request_max_bytes: int = 1024 * 1024

    def timeout_for(self, user: str | None, role: str | None) -> float:
        """The time limit of ``user``'s statements in seconds (0: none)."""
        if user is not None and user in self.user_timeout_s:
            return self.user_timeout_s[user]
        if role is not None and role in self.role_timeout_s:
            return self.role_timeout_s[role]
        return self.timeout_s


class HooksSection(_Frozen, frozen=True):
    """Commands run when a member becomes primary (see ``litemirror.server.ha.hooks``).

    Each is an executable with arguments (``"/usr/local/bin/check --strict"``)
    or ``"python:package.module:function"``; None: no hook at that point.
    """

    #: Asked before the takeover starts; failing aborts it (retried later).
    can_start_become_primary: str | None = None
    #: Asked when the member is ready to take writes; failing aborts the takeover.
    check_become_primary_ok: str | None = None
    #: Told after the member became primary; never blocks.
    notify_become_primary: str | None = None
    #: Told after a takeover was aborted; never blocks.
    notify_become_primary_failed: str | None = None
    #: Seconds one hook may run before it is killed and counted as failed.
    timeout_s: float = 10.0


HOOK_POINTS = (
    "can_start_become_primary",
    "check_become_primary_ok",
    "notify_become_primary",
    "notify_become_primary_failed",
)
PYTHON_HOOK_RE = re.compile(
    r"^python:(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)$"
)
IFNAME_RE = re.compile(r"^[^\s/:]{1,15}$")


Severity = Literal["info", "warning", "error", "critical"]
#: Event severities, lowest first; a notification target gets events at or
#: above its ``min_severity``.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")


class EmailSection(_Frozen, frozen=True, kw_only=True):
    """SMTP delivery of event notifications (``[notify.email]``)."""

    host: str
    port: int = 587
    #: Upgrade the connection with STARTTLS before authenticating (port 587).
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    from_: str = msgspec.field(name="from")
    to: list[str]
    min_severity: Severity = "warning"
    #: CA certificates (PEM) that sign the server's certificate; None: the
    #: system's trust store.
    ca_file: str | None = None
    #: Attempts after the first one; the waits between them double from 0.5 s.
    retries: int = 3
    timeout_s: float = 10.0


class WebhookSection(_Frozen, frozen=True):
    """One HTTP endpoint that receives each event as a JSON POST (``[[notify.webhooks]]``)."""

    url: str
    min_severity: Severity = "warning"
    headers: dict[str, str] = {}
    #: Attempts after the first one; the waits between them double from 0.5 s.
    retries: int = 5
    timeout_s: float = 10.0


class NotifySection(_Frozen, frozen=True):
    email: EmailSection | None = None
    webhooks: list[WebhookSection] = []
    #: Events waiting to be sent; when full the oldest is dropped (and counted).
    queue_size: int = 1000


class CanarySection(_Frozen, frozen=True):
    """Heartbeat records the primary writes through the whole pipeline."""

    #: Seconds between canary writes on the primary; 0 turns canaries off.
    interval_s: float = 0.0
    #: A member whose last applied canary is older than this raises ``canary_stale``.
    stale_after_s: float = 30.0


class BackupSection(_Frozen, frozen=True):
    """``[backup]``: where members write backup sets (see docs/backup.md)."""

    #: The backup root; a client's ``--to`` must resolve inside it. None: each
    #: member's ``<data_dir>/backups``. Relative to the config file's directory.
    dir: str | None = None
    #: A file with the key backup copies are encrypted with (docs/backup.md,
    #: "Encryption at rest"). None: copies are stored in clear.
    encrypt_key_file: str | None = None
    #: Scheduled backups: an interval (``"24h"``) or a cron expression in UTC
    #: (``"0 3 * * *"``), not both; neither: no schedule. See docs/backup.md "Schedules".
    every: str | None = None
    cron: str | None = None
    #: Verified sets of this mirror a member keeps after a scheduled backup; 0 keeps all.
    keep: int = 0
    #: Who takes scheduled backups: "standby" (a caught-up failover or dr member,
    #: else the primary), "primary", or a member's name.
    at: str = "standby"
    #: How long the primary waits for another member to take a scheduled backup before
    #: it counts the attempt as failed (and tries again later).
    timeout_s: float = 3600.0

    @property
    def every_s(self) -> float | None:
        """``every`` in seconds (checked at load)."""
        from litemirror.backup.schedule import parse_duration

        return None if self.every is None else parse_duration("backup.every", self.every)

    @property
    def scheduled(self) -> bool:
        return self.every is not None or self.cron is not None

    def root(self, member: Member) -> Path:
        return Path(self.dir) if self.dir is not None else member.data_dir / "backups"


class ArchiveSection(_Frozen, frozen=True):
    """``[archive]``: where closed journal segments are kept for point-in-time restore."""

    #: The archive's root; each member writes to ``<dir>/<mirror>/<member>/``.
    #: Unset: no archive (segments are purged once every member has them).
    dir: str | None = None
    #: Archived segments older than this many days are deleted; 0 keeps them forever.
    keep_days: float = 0.0
    #: Past this many bytes in the member's archive the oldest segments are
    #: deleted; 0 means no size limit.
    max_bytes: int = 0
    #: A file with the key archived segments are encrypted with. None: in clear.
    encrypt_key_file: str | None = None


class Archive(_Frozen, frozen=True):
    """The resolved ``[archive]`` section (present only when ``dir`` is set)."""

    dir: Path
    keep_days: float
    max_bytes: int
    encrypt_key_file: Path | None = None


class _FileConfig(_Frozen, frozen=True):
    mirror: MirrorSection
    members: list[MemberSection]
    journal: JournalSection = JournalSection()
    server: ServerSection = ServerSection()
    limits: LimitsSection = LimitsSection()
    hooks: HooksSection = HooksSection()
    notify: NotifySection = NotifySection()
    canary: CanarySection = CanarySection()
    tls: TlsSection = TlsSection()
    auth: AuthSection = AuthSection()
    sqlite: SqliteSection = SqliteSection()
    statements: StatementsSection = StatementsSection()
    backup: BackupSection = BackupSection()
    archive: ArchiveSection = ArchiveSection()


class Member(_Frozen, frozen=True):
    name: str
    host: str
    port: int
    data_dir: Path
    kind: MemberKind
    http: str | None
    vip_interface: str | None = None
    compression: Compression = "auto"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_subject: str | None = None

    @property
    def compress_stream(self) -> bool:
        """Whether the primary compresses the replication stream sent to this member."""
        if self.compression == "auto":
            return self.kind == "dr"
        return self.compression == "on"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Tls(_Frozen, frozen=True):
    """The resolved ``[tls]`` section: absolute paths, templates kept."""

    ca: Path
    cert: str
    key: str
    require: bool
    arbiter_name: str

    def files_for(self, name: str, member: Member | None = None) -> tuple[Path, Path]:
        """Certificate and key of ``name`` (a member name or the arbiter's)."""
        cert = member.tls_cert if member is not None and member.tls_cert else None
        key = member.tls_key if member is not None and member.tls_key else None
        return (
            cert or Path(self.cert.replace("{name}", name)),
            key or Path(self.key.replace("{name}", name)),
        )


class Config(_Frozen, frozen=True):
    """The validated, frozen configuration of one mirror."""

    path: Path | None
    mirror: MirrorSection
    members: tuple[Member, ...]
    journal: JournalSection
    server: ServerSection
    limits: LimitsSection
    hooks: HooksSection = HooksSection()
    notify: NotifySection = NotifySection()
    canary: CanarySection = CanarySection()
    tls: Tls | None = None
    auth: AuthSection = AuthSection()
    sqlite: SqliteSection = SqliteSection()
    statements: StatementsSection = StatementsSection()
    backup: BackupSection = BackupSection()
    archive: Archive | None = None

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.members)
        raise ConfigError(f"members: no member named {name!r} (known: {known})")

    @property
    def failover_members(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.kind == "failover")


def parse_address(key: str, value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{key}: {value!r} is not HOST:PORT")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(f"{key}: port {port_s!r} in {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{key}: port {port} in {value!r} is out of range 1-65535")
    return host.strip("[]"), port


def _check_vip(key: str, value: str) -> None:
    if "/" not in value:
        raise ConfigError(
            f"{key}: {value!r} needs a prefix length, e.g. '{value}/24', so the address "
            "is added with the right subnet"
        )
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an IPv4 address with prefix") from None
    if not isinstance(iface, ipaddress.IPv4Interface):
        raise ConfigError(f"{key}: {value!r} is not IPv4 (the virtual IP is announced by ARP)")
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise ConfigError(f"{key}: {value!r} is the network or broadcast address of {net}")


def _check_hook(key: str, value: str) -> None:
    if value.startswith("python:"):
        if not PYTHON_HOOK_RE.fullmatch(value):
            raise ConfigError(f"{key}: {value!r} must look like 'python:package.module:function'")
        return
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {value!r} is not a valid command line: {exc}") from None
    if not argv:
        raise ConfigError(f"{key}: {value!r} is empty; leave the key out for no hook")


EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _positive(key: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key}: {value!r} must be a positive number of seconds")


def _check_notify(n: NotifySection) -> None:
    if n.queue_size < 1:
        raise ConfigError(f"notify.queue_size: {n.queue_size} must be >= 1")
    e = n.email
    if e is not None:
        if not e.host or any(c.isspace() for c in e.host):
            raise ConfigError(f"notify.email.host: {e.host!r} is not a host name")
        if not 0 < e.port < 65536:
            raise ConfigError(f"notify.email.port: {e.port} is out of range 1-65535")
        for key, addr in [("from", e.from_)] + [(f"to[{i}]", a) for i, a in enumerate(e.to)]:
            if not EMAIL_RE.fullmatch(addr):
                raise ConfigError(f"notify.email.{key}: {addr!r} is not an email address")
        if not e.to:
            raise ConfigError("notify.email.to: [] names no recipient; add at least one")
        if (e.username is None) != (e.password is None):
            raise ConfigError(
                "notify.email.username/password: set both for SMTP AUTH, or neither "
                f"(username is {e.username!r})"
            )
        if e.username is not None and not e.starttls:
            raise ConfigError(
                "notify.email.starttls: false together with a username would send the "
                "password in clear; set starttls = true"
            )
        if not 0 <= e.retries <= 20:
            raise ConfigError(f"notify.email.retries: {e.retries} must be between 0 and 20")
        _positive("notify.email.timeout_s", e.timeout_s)
    for i, w in enumerate(n.webhooks):
        key = f"notify.webhooks[{i}]"
        if not re.match(r"^https?://[^\s/]+", w.url):
            raise ConfigError(f"{key}.url: {w.url!r} is not an http:// or https:// URL")
        if not 0 <= w.retries <= 20:
            raise ConfigError(f"{key}.retries: {w.retries} must be between 0 and 20")
        _positive(f"{key}.timeout_s", w.timeout_s)


def _check_canary(c: CanarySection) -> None:
    if not (math.isfinite(c.interval_s) and c.interval_s >= 0):
        raise ConfigError(
            f"canary.interval_s: {c.interval_s!r} must be 0 (off) or a positive number of seconds"
        )
    _positive("canary.stale_after_s", c.stale_after_s)
    if c.interval_s > 0 and c.stale_after_s < 2 * c.interval_s:
        raise ConfigError(
            f"canary.stale_after_s: {c.stale_after_s} must be at least twice "
            f"canary.interval_s ({c.interval_s}) so one late canary raises no alarm"
        )


def _check_statements(st: StatementsSection, s: ServerSection, lim: LimitsSection) -> None:
    """The statement limits and the threads and shutdown bound that enforce them."""

    def seconds(key: str, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key}: {value!r} must be 0 (no limit) or a number of seconds")

    seconds("statements.timeout_s", st.timeout_s)
    seconds("statements.slow_s", st.slow_s)
    for role, value in st.role_timeout_s.items():
        if role not in ROLES:
            raise ConfigError(
                f"statements.role_timeout_s.{role}: {role!r} is not a role; use read, write "
                "or admin"
            )
        seconds(f"statements.role_timeout_s.{role}", value)
    for user, value in st.user_timeout_s.items():
        if not USER_RE.fullmatch(user):
            raise ConfigError(
                f"statements.user_timeout_s: {user!r} is not a user name (1-64 letters, "
                "digits, '.', '_' or '-', starting with a letter or digit)"
            )
        seconds(f"statements.user_timeout_s.{user}", value)
    if not 1024 <= st.read_request_max_bytes <= lim.max_frame_bytes:
        raise ConfigError(
            f"statements.read_request_max_bytes: {st.read_request_max_bytes} must be between "
            f"1024 and limits.max_frame_bytes ({lim.max_frame_bytes})"
        )
    if not 1 <= s.read_threads <= 256:
        raise ConfigError(f"server.read_threads: {s.read_threads} must be between 1 and 256")
    _positive("server.shutdown_timeout_s", s.shutdown_timeout_s)


def _check_sqlite(raw: Any) -> None:
    """Check ``[sqlite.databases.NAME]`` tables before decoding, to name NAME in errors.

    (msgspec reports a wrong value inside a mapping as ``databases[...]``.)
    """
    databases = raw.get("databases") if isinstance(raw, dict) else None
    if not isinstance(databases, dict):
        return  # absent, or reported by the decoder with its key
    for name, table in databases.items():
        key = f"sqlite.databases.{name}"
        if not DB_RE.fullmatch(name):
            raise ConfigError(
                f"{key}: {name!r} is not a database name (letters, digits, '_' or '-', at "
                "most 64, starting with a letter or digit)"
            )
        try:
            msgspec.convert(table, SqliteDatabaseSection)
        except msgspec.ValidationError as exc:
            msg, _, where = str(exc).partition(" - at `$.")
            field = f".{where.rstrip('`')}" if where else ""
            raise ConfigError(f"{key}{field}: {msg}") from None


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else (base / p).resolve()


SUBJECT_ATTR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*=.+$")


def _check_subject(key: str, value: str | None) -> str | None:
    """An RFC 4514 subject, checked for shape here and compared exactly at run time."""
    if value is None:
        return None
    parts = [p.strip() for p in re.split(r"(?<!\\),", value)]
    if not parts or not all(SUBJECT_ATTR_RE.fullmatch(p) for p in parts):
        raise ConfigError(
            f"{key}: {value!r} is not a certificate subject; write it like "
            "'CN=a,OU=member,O=litemirror'"
        )
    return value


def _check_import_dir(s: ServerSection, base: Path, members: list[Member]) -> ServerSection:
    """``s`` with ``import_dir`` made absolute; refused when it overlaps a data_dir."""
    if s.import_dir is None:
        return s
    if not s.import_dir.strip():
        raise ConfigError(
            "server.import_dir: '' names no directory; leave the key out to turn imports off"
        )
    d = Path(os.path.realpath(base / s.import_dir))
    for mb in members:
        data = Path(os.path.realpath(mb.data_dir))
        if d == data or data in d.parents or d in data.parents:
            raise ConfigError(
                f"server.import_dir: {s.import_dir!r} overlaps the data_dir of member "
                f"{mb.name!r} ({mb.data_dir}); imports would reach the member's own files "
                "(its journal, its _system database): use a directory of its own"
            )
    return msgspec.structs.replace(s, import_dir=str(d))


def _check_archive(a: ArchiveSection, base: Path, members: list[Member]) -> Archive | None:
    """The resolved archive, or None without ``archive.dir``; refused if it overlaps a data_dir."""
    if a.dir is None:
        for key in ("keep_days", "max_bytes", "encrypt_key_file"):
            value = getattr(a, key)
            if value:
                shown = repr(value) if isinstance(value, str) else f"{value:g}"
                raise ConfigError(
                    f"archive.{key}: set to {shown} but archive.dir is not; "
                    "set archive.dir (where segments are archived) or remove the key"
                )
        return None
    if not a.dir.strip():
        raise ConfigError(
            "archive.dir: '' names no directory; leave the key out for no journal archive"
        )
    if not (math.isfinite(a.keep_days) and a.keep_days >= 0):
        raise ConfigError(
            f"archive.keep_days: {a.keep_days:g} must be 0 (keep forever) or a number of days"
        )
    if a.max_bytes < 0:
        raise ConfigError(
            f"archive.max_bytes: {a.max_bytes} must be 0 (no size limit) or a number of bytes"
        )
    d = Path(os.path.realpath(base / a.dir))
    for mb in members:
        data = Path(os.path.realpath(mb.data_dir))
        if d == data or data in d.parents or d in data.parents:
            raise ConfigError(
                f"archive.dir: {a.dir!r} overlaps the data_dir of member {mb.name!r} "
                f"({mb.data_dir}); a re-seeded member's data directory is replaced whole, "
                "and the archive must outlive it: use a directory of its own"
            )
    key_file = _check_key_file("archive.encrypt_key_file", a.encrypt_key_file, base)
    return Archive(
        dir=d,
        keep_days=a.keep_days,
        max_bytes=a.max_bytes,
        encrypt_key_file=Path(key_file) if key_file is not None else None,
    )


def _check_key_file(setting: str, value: str | None, base: Path) -> str | None:
    """The key file made absolute, once it is known to hold a usable, private key."""
    if value is None:
        return None
    # Imported here: cryptography costs load time that configs without a key skip.
    from litemirror.backup.keyfile import load_key
    from litemirror.errors import BackupError

    path = Path(os.path.realpath(base / value))
    try:
        load_key(path, setting)
    except BackupError as exc:
        raise ConfigError(exc.message) from None
    return str(path)


def _check_tls(t: TlsSection, base: Path, members: list[Member]) -> Tls | None:
    given = {k: getattr(t, k) for k in ("ca", "cert", "key") if getattr(t, k) is not None}
    if not given:
        if t.require:
            raise ConfigError(
                "tls.require: true needs tls.ca, tls.cert and tls.key (see docs/security.md)"
            )
        return None
    missing = [k for k in ("ca", "cert", "key") if getattr(t, k) is None]
    if missing:
        raise ConfigError(
            f"tls: {', '.join('tls.' + k for k in missing)} missing; give ca, cert and key "
            "together (cert and key may use {name} for the member's name)"
        )
    if not MEMBER_RE.fullmatch(t.arbiter_name):
        raise ConfigError(f"tls.arbiter_name: {t.arbiter_name!r} is not a valid name")
    assert t.ca is not None and t.cert is not None and t.key is not None
    ca = _path(base, t.ca)
    assert ca is not None

    def template(v: str) -> str:
        return v if Path(v).is_absolute() else str(base / v)

    return Tls(
        ca=ca,
        cert=template(t.cert),
        key=template(t.key),
        require=t.require,
        arbiter_name=t.arbiter_name,
    )


def _env_overrides(data: dict[str, Any], environ: dict[str, str]) -> None:
    for section in (
        "mirror",
        "journal",
        "server",
        "limits",
        "tls",
        "auth",
        "sqlite",
        "statements",
        "archive",
    ):
        prefix = f"LITEMIRROR_{section.upper()}_"
        for key, raw in environ.items():
            if not key.startswith(prefix):
                continue
            field = key[len(prefix) :].lower()
            sec = data.setdefault(section, {})
            if not isinstance(sec, dict):
                raise ConfigError(f"{section}: must be a table")
            # Let msgspec convert from the TOML-ish literal.
            try:
                value: Any = msgspec.toml.decode(f"v = {raw}".encode())["v"]
            except msgspec.DecodeError:
                value = raw
            sec[field] = value


def _decode(data: dict[str, Any]) -> _FileConfig:
    try:
        return msgspec.convert(data, _FileConfig)
    except msgspec.ValidationError as exc:
        # msgspec says e.g. "Expected `int`, got `str` - at `$.server.threads`"
        msg = str(exc)
        where = ""
        if " - at `$." in msg:
            msg, _, where = msg.partition(" - at `$.")
            where = where.rstrip("`")
        raise ConfigError(f"{where or 'config'}: {msg}") from None


def build(
    data: dict[str, Any], *, path: Path | None = None, environ: dict[str, str] | None = None
) -> Config:
    """Validate a parsed config mapping and return the frozen :class:`Config`."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    _env_overrides(data, dict(os.environ) if environ is None else environ)
    _check_sqlite(data.get("sqlite"))
    fc = _decode(data)
    base = path.parent if path is not None else Path.cwd()

    m = fc.mirror
    if not NAME_RE.fullmatch(m.name):
        raise ConfigError(f"mirror.name: {m.name!r} must be 1-15 letters or digits")
    seen_db: set[str] = set()
    for db in m.databases:
        if not DB_RE.fullmatch(db):
            raise ConfigError(
                f"mirror.databases: {db!r} must start with a letter or digit and hold only "
                "letters, digits, '_' or '-' (at most 64)"
            )
        if db in seen_db:
            raise ConfigError(f"mirror.databases: {db!r} is listed twice")
        seen_db.add(db)
    if m.qos_timeout_ms < 100:
        raise ConfigError(f"mirror.qos_timeout_ms: {m.qos_timeout_ms} is below the minimum 100")
    if m.heartbeat_ms <= 0 or m.heartbeat_ms * 3 > m.qos_timeout_ms:
        raise ConfigError(
            f"mirror.heartbeat_ms: {m.heartbeat_ms} must be positive and at most a third of "
            f"mirror.qos_timeout_ms ({m.qos_timeout_ms}) so a live peer is never declared lost"
        )
    if m.arbiter is not None:
        parse_address("mirror.arbiter", m.arbiter)
    if m.vip is not None:
        _check_vip("mirror.vip", m.vip)

    if not fc.members:
        raise ConfigError("members: at least one [[members]] entry is required")
    members: list[Member] = []
    names: set[str] = set()
    addresses: set[tuple[str, int]] = set()
    dirs: set[Path] = set()
    for i, ms in enumerate(fc.members):
        key = f"members[{i}]"
        if not MEMBER_RE.fullmatch(ms.name):
            raise ConfigError(f"{key}.name: {ms.name!r} is not a valid member name")
        if ms.name in names:
            raise ConfigError(f"{key}.name: duplicate member name {ms.name!r}")
        names.add(ms.name)
        host, port = parse_address(f"{key}.address", ms.address)
        if (host, port) in addresses:
            raise ConfigError(f"{key}.address: {ms.address!r} is used by another member")
        addresses.add((host, port))
        if ms.http is not None:
            parse_address(f"{key}.http", ms.http)
        if not ms.data_dir:
            raise ConfigError(f"{key}.data_dir: must not be empty")
        d = Path(ms.data_dir)
        d = (base / d).resolve() if not d.is_absolute() else d
        if d in dirs:
            raise ConfigError(f"{key}.data_dir: {ms.data_dir!r} is used by another member")
        dirs.add(d)
        if ms.vip_interface is not None:
            if not IFNAME_RE.fullmatch(ms.vip_interface):
                raise ConfigError(
                    f"{key}.vip_interface: {ms.vip_interface!r} is not a network interface "
                    "name (1-15 characters, no spaces, '/' or ':')"
                )
            if m.vip is None:
                raise ConfigError(
                    f"{key}.vip_interface: {ms.vip_interface!r} is set but mirror.vip is not; "
                    "set mirror.vip or remove vip_interface"
                )
        elif m.vip is not None and ms.kind == "failover":
            raise ConfigError(
                f"{key}.vip_interface: missing on failover member {ms.name!r}, but mirror.vip "
                f"is {m.vip!r}; name the interface that takes the address, e.g. 'eth0'"
            )
        members.append(
            Member(
                name=ms.name,
                host=host,
                port=port,
                data_dir=d,
                kind=ms.kind,
                http=ms.http,
                vip_interface=ms.vip_interface,
                compression=ms.compression,
                tls_cert=_path(base, ms.tls_cert),
                tls_key=_path(base, ms.tls_key),
                tls_subject=_check_subject(f"{key}.tls_subject", ms.tls_subject),
            )
        )
    failover = [x for x in members if x.kind == "failover"]
    if len(failover) > 2:
        raise ConfigError(
            f"members: {len(failover)} members have kind 'failover'; a mirror has at most two "
            "(use kind 'dr' or 'reporting' for the others)"
        )
    if not failover:
        raise ConfigError("members: at least one member must have kind 'failover'")

    s = _check_import_dir(fc.server, base, members)
    j = fc.journal
    if j.segment_bytes < 64 * 1024:
        raise ConfigError(f"journal.segment_bytes: {j.segment_bytes} is below 65536")
    if not 1 <= s.threads <= 256:
        raise ConfigError(f"server.threads: {s.threads} must be between 1 and 256")
    if s.max_open_databases < 1:
        raise ConfigError(f"server.max_open_databases: {s.max_open_databases} must be >= 1")
    if s.group_max < 1:
        raise ConfigError(f"server.group_max: {s.group_max} must be >= 1")
    if s.readers_per_database < 1:
        raise ConfigError(f"server.readers_per_database: {s.readers_per_database} must be >= 1")
    lim = fc.limits
    if lim.max_frame_bytes < 1024:
        raise ConfigError(f"limits.max_frame_bytes: {lim.max_frame_bytes} is below 1024")
    for key in (
        "max_connections",
        "max_connections_per_host",
        "max_connections_per_user",
        "max_handshakes",
        "max_handshakes_per_host",
        "max_anonymous",
        "max_anonymous_per_host",
        "http_max_connections",
        "http_max_connections_per_host",
    ):
        value = getattr(lim, key)
        if not 1 <= value <= 1_000_000:
            raise ConfigError(
                f"limits.{key}: {value} must be a whole number of connections from 1 to 1000000"
            )
    h = fc.hooks
    for point in HOOK_POINTS:
        hook = getattr(h, point)
        if hook is not None:
            _check_hook(f"hooks.{point}", hook)
    if not (math.isfinite(h.timeout_s) and h.timeout_s > 0):
        raise ConfigError(f"hooks.timeout_s: {h.timeout_s} must be a positive number of seconds")

    if not (math.isfinite(lim.idle_timeout_s) and lim.idle_timeout_s >= 0):
        raise ConfigError(
            f"limits.idle_timeout_s: {lim.idle_timeout_s!r} must be 0 (never) or a number "
            "of seconds"
        )
    _positive("limits.handshake_timeout_s", lim.handshake_timeout_s)
    _positive("limits.anonymous_timeout_s", lim.anonymous_timeout_s)
    _positive("limits.http_timeout_s", lim.http_timeout_s)
    _check_notify(fc.notify)
    _check_canary(fc.canary)
    _check_statements(fc.statements, s, lim)
    tls = _check_tls(fc.tls, base, members)
    archive = _check_archive(fc.archive, base, members)

    return Config(
        path=path,
        mirror=m,
        members=tuple(members),
        journal=j,
        server=s,
        limits=lim,
        hooks=h,
        notify=fc.notify,
        canary=fc.canary,
        tls=tls,
        auth=fc.auth,
        sqlite=fc.sqlite,
        statements=fc.statements,
        backup=_check_backup(fc.backup, base, members),
        archive=archive,
    )


def _check_backup(b: BackupSection, base: Path, members: list[Member]) -> BackupSection:
    """``b`` with ``dir`` and ``encrypt_key_file`` made absolute (the key file checked)
    and its schedule checked."""
    from litemirror.backup.schedule import check_cron, parse_duration

    if b.every is not None and b.cron is not None:
        raise ConfigError(
            f"backup: both every = {b.every!r} and cron = {b.cron!r} are set; keep one of them"
        )
    if b.every is not None:
        parse_duration("backup.every", b.every)
    if b.cron is not None:
        check_cron("backup.cron", b.cron)
    if b.keep < 0:
        raise ConfigError(
            f"backup.keep: {b.keep} must be 0 (keep every set) or the number of verified "
            "sets to keep"
        )
    if b.keep and b.every is None and b.cron is None:
        raise ConfigError(
            "backup.keep applies after scheduled backups, and no schedule is set; add "
            'backup.every (e.g. "24h") or backup.cron, or remove keep'
        )
    if not (math.isfinite(b.timeout_s) and b.timeout_s > 0):
        raise ConfigError(f"backup.timeout_s: {b.timeout_s!r} must be a positive number of seconds")
    names = [mb.name for mb in members]
    if b.at not in ("standby", "primary") and b.at not in names:
        raise ConfigError(
            f'backup.at: {b.at!r} is neither "standby", "primary" nor a member '
            f"(members: {', '.join(names)})"
        )
    b = msgspec.structs.replace(
        b, encrypt_key_file=_check_key_file("backup.encrypt_key_file", b.encrypt_key_file, base)
    )
    if b.dir is None:
        return b
    if not b.dir.strip():
        raise ConfigError(
            "backup.dir: '' names no directory; leave the key out for <data_dir>/backups"
        )
    return msgspec.structs.replace(b, dir=os.path.realpath(base / b.dir))


def load(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read, validate and freeze the config at ``path``."""
    p = Path(path).resolve()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc.strerror}") from None
    try:
        data = msgspec.toml.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{p.name}: not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p.name}: top level must be a table")
    return build(data, path=p, environ=environ)
