"""Users and roles: who may log in to the mirror, and what each role may do.

Theory of operation
-------------------
Users live in the table ``users`` of the system database ``_system``, a
database of the registry like any other: the primary changes it through the
normal journalled write path, so backups apply it from the replication
stream, a member that takes over already knows every user, and ``litemirror
verify`` compares it like the rest. It is created on the primary by the
first ``litemirror user add``. Clients may read it only as admin, and never
write it: users change through the ``user_*`` admin actions only.

With ``auth.require`` off (the default) nothing here is asked: every
connection may do everything, as before users existed. With it on, a
connection logs in in ``Hello``:

* user name and password, checked against the stored scrypt hash
  (:mod:`litemirror.security.passwords`) on a small thread pool of its own,
  so logins never wait behind SQLite work or hold up the event loop;
* or a verified TLS client certificate (``OU=client``) whose CN names a
  user; such a user needs no password (and may have none);
* or nothing: a control connection (no database) may then ping and ask for
  the status a load balancer needs (role, state, epoch), and nothing else —
  unless it presents the certificate of a member of the mirror (the Monitor
  page of one member asks the others): then it reads the full status.

Whatever went wrong — unknown user, wrong password, a certificate-only user
trying a password — the client gets the same :class:`AuthenticationError`
text after the same amount of work (an unknown user costs a dummy scrypt
run). The log and the ``auth_refused`` event (admins only, see
:mod:`litemirror.security.visibility`) say who tried from where; a name that
is no user's is not written down at all (people type passwords into the
user field), only that one failed.

Failed logins are slowed per host and per user name
(:mod:`litemirror.security.throttle` holds the policy): a host's attempts
are checked one at a time, and those its back-off still holds are refused
unchecked, so parallel connections do not multiply the rate; hosts that
failed recently take turns on a user name.

Roles are ordered: ``read`` < ``write`` < ``admin``. ``read`` runs queries
(the reader path) and the read-only admin actions; ``write`` also changes
data; ``admin`` may do everything, including switchover, promote, db add,
journal switch and user management. The session asks :meth:`Users.may_write`
and :meth:`Users.authorize_action` before it acts.

Bootstrap: while no admin user exists, a connection from loopback may act as
admin (``auth.localhost_bootstrap``, on by default), so the first ``litemirror
user add`` can run on a member's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from litemirror.config import Config, Member
from litemirror.errors import (
    AuthenticationError,
    Error,
    PermissionDeniedError,
    ProgrammingError,
    UnavailableError,
)
from litemirror.security.certs import PeerIdentity
from litemirror.security.passwords import (
    check_password,
    dummy_verify,
    hash_password,
    verify_password,
)
from litemirror.security.roles import (
    ANONYMOUS,
    BOOTSTRAP,
    MEMBER,
    MEMBER_ACTIONS,
    OPEN,
    READ_ACTIONS,
    ROLES,
    USER_ACTIONS,
    USER_RE,
    Principal,
    action_needs,
    allows,
    check_role,
    check_user_name,
    is_loopback,
)
from litemirror.security.throttle import LoginThrottle
from litemirror.security.tls import member_authorisation
from litemirror.server.front.ports import Databases, LimitedEvents
from litemirror.server.ports import EventSink
from litemirror.server.storage.registry import SYSTEM_DB

log = logging.getLogger("litemirror.users")
T = TypeVar("T")

#: Logins waiting for a password check beyond this are refused (retryable).
MAX_PENDING_CHECKS = 64
#: Successful checks remembered (as keyed digests), so reconnects skip scrypt.
VERIFIED_CACHE = 1024
#: Attempts of a host that failed recently that may wait for their turn; more are
#: refused unchecked (a host without failures, e.g. a connection pool starting, always waits).
HOST_QUEUE = 8
#: Attempts (from hosts that failed recently) that may wait for their turn on one user name.
USER_QUEUE = 16
#: What the log and events say instead of a user name that is no user's.
UNKNOWN_NAME = "a name that is not a user (not recorded: it may be a mistyped password)"

AUTH_FAILED = (
    "authentication failed: the user name and password (or the client certificate) "
    "were not accepted; check the credentials"
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    password_hash TEXT,
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
"""


def _short(text: str | None) -> str:
    """A client-given name, safe to log (quoted, bounded)."""
    return repr(text[:64] + ("..." if len(text) > 64 else "")) if text is not None else "-"


@dataclass(frozen=True, slots=True)
class UserRow:
    name: str
    role: str
    password_hash: str | None
    created_at: str
    changed_at: str


__all__ = [
    "ANONYMOUS",
    "BOOTSTRAP",
    "MEMBER",
    "OPEN",
    "READ_ACTIONS",
    "ROLES",
    "USER_ACTIONS",
    "USER_RE",
    "Principal",
    "Users",
    "action_needs",
    "allows",
    "check_role",
    "check_user_name",
    "is_loopback",
]

# --------------------------------------------------------------- the shell


class _Turns:
    """One at a time per key: asyncio locks made on demand and dropped when nobody waits."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def waiting(self, key: str) -> int:
        """Attempts holding or waiting for the turn of ``key``."""
        entry = self._locks.get(key)
        return entry[1] if entry is not None else 0

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock, n = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, n + 1)
        try:
            async with lock:
                yield
        finally:
            lock, n = self._locks[key]
            if n <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, n - 1)


class Users:
    """The member's users: lookups, logins, role checks and changes."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        me: Member,
        databases: Databases,
        create_database: Callable[[str], Awaitable[int]],
        event: EventSink,
        events: LimitedEvents,
        primary_address: Callable[[], str | None],
    ) -> None:
        #: The current configuration (a reload may change the members).
        self.config = config
        self.me = me
        self.databases = databases
        self.create_database = create_database
        self.event = event
        self.events = events
        self.primary_address = primary_address
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = asyncio.Lock()
        self._cache_key = secrets.token_bytes(32)
        #: Keyed digest of (name, password) that logged in -> the stored hash it matched.
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        #: Back-off for hosts and user names that keep failing to log in.
        self.throttle = LoginThrottle()
        self._host_turns = _Turns()
        self._user_turns = _Turns()

    @property
    def required(self) -> bool:
        return self.config().auth.require

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------ reading

    async def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        reg = self.databases
        if not reg.exists(SYSTEM_DB):
            return []
        db = await reg.get(SYSTEM_DB)
        try:
            res = await db.read(sql, params)
        except ProgrammingError:
            return []  # created, but the users table is not there yet
        return list(res.rows) if res is not None else []

    async def lookup(self, name: str) -> UserRow | None:
        rows = await self._rows(
            "SELECT name, role, password_hash, created_at, changed_at FROM users WHERE name = ?",
            [name],
        )
        return UserRow(*rows[0]) if rows else None

    async def listing(self) -> list[UserRow]:
        rows = await self._rows(
            "SELECT name, role, password_hash, created_at, changed_at FROM users ORDER BY name", []
        )
        return [UserRow(*r) for r in rows]

    async def admin_exists(self) -> bool:
        return bool(await self._rows("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1", []))

    # ------------------------------------------------------------- logins

    async def login(
        self,
        user: str | None,
        password: str | None,
        identity: PeerIdentity | None,
        peer: str,
        database: str = "",
        ssl_object: ssl.SSLObject | None = None,
    ) -> Principal:
        """Who a new connection acts as; raises (and logs) when it may not connect.

        ``ssl_object``: the connection's TLS object; a control connection that
        presents the certificate of a member of this mirror acts as
        :data:`MEMBER` (it sees the full status, as members show each other
        on the Monitor page).
        """
        if not self.required:
            return OPEN
        user = user or None
        cert_user = identity.cn if identity is not None and identity.ou == "client" else None
        if user is None and cert_user is None:
            if not database:
                if self.member_certificate(ssl_object) is not None:
                    return MEMBER
                return ANONYMOUS  # ping and what a load balancer needs of the status
            if await self.bootstrap_allowed(peer):
                return BOOTSTRAP
            self.refused(
                peer,
                "authentication",
                f"authentication required: a connection from {peer} to database "
                f"{_short(database)} gave no credentials",
            )
            raise AuthenticationError(
                "authentication required: this mirror needs a user name and password "
                "(litemirror://user:password@host/database) or a client certificate"
            )
        name = user if user is not None else cert_user
        assert name is not None
        principal = await self.authenticate(name, password, cert_user, peer)
        if database == SYSTEM_DB and not allows(principal.role, "admin"):
            self.refused(
                peer,
                "permission",
                f"permission denied: {principal.describe()} from {peer} may not open "
                "the system database",
            )
            raise PermissionDeniedError(
                f"{SYSTEM_DB} is litemirror's system database; only admin users may read it"
            )
        return principal

    async def authenticate(
        self, name: str, password: str | None, cert_user: str | None, peer: str
    ) -> Principal:
        """Check a password (or a certificate's user); raise AuthenticationError if refused.

        Password logins go through the back-off (:mod:`litemirror.security.throttle`
        holds the policy): the attempts of one client host are checked one at a
        time, and one the host's back-off still holds is refused unchecked, at
        once, saying when to retry. Attempts from a host that failed recently
        also take turns on the user name, each after what is left of the name's
        back-off. A failure is answered at once; so is a right password.
        """
        if cert_user is not None and name == cert_user:
            # A verified certificate cannot be guessed: no back-off.
            row = await self._lookup(name, peer)
            if row is not None:
                return Principal(name, row.role, "certificate")
            self.refused(
                peer,
                "authentication",
                f"authentication failed for client certificate CN={_short(cert_user)} from {peer}",
            )
            raise AuthenticationError(AUTH_FAILED)
        password = password or ""
        host = peer.rpartition(":")[0] or peer
        if (
            self.throttle.suspect(host, time.monotonic())
            and self._host_turns.waiting(host) >= HOST_QUEUE
        ):
            self._not_checked(peer, f"{HOST_QUEUE} attempts from {host} are already waiting")
        async with self._host_turns.turn(host):
            plan = self.throttle.plan(host, name, time.monotonic())
            if plan.host_retry_in_s > 0:
                self._not_checked(
                    peer,
                    f"{host} is held for {plan.host_retry_in_s:.1f} s more",
                    plan.host_retry_in_s,
                )
            if not plan.user_turn:
                # A host without recent failures does not queue behind the guessers
                # of this name: the real user gets in from its usual host at once.
                who = await self._attempt(name, password, host, peer)
            else:
                if self._user_turns.waiting(name) >= USER_QUEUE:
                    self._not_checked(peer, "too many attempts at one user name are waiting")
                async with self._user_turns.turn(name):
                    wait = self.throttle.plan(host, name, time.monotonic()).user_wait_s
                    if wait > 0:
                        await asyncio.sleep(wait)  # at most user_max_s
                    who = await self._attempt(name, password, host, peer)
        if who is None:
            raise AuthenticationError(AUTH_FAILED)
        return who

    async def _lookup(self, name: str, peer: str) -> UserRow | None:
        """The user row of ``name`` (None for a name no user may have); Unavailable on errors."""
        if not USER_RE.fullmatch(name):
            return None
        try:
            return await self.lookup(name)
        except Error as exc:
            log.warning("cannot look up a user for %s: %s", peer, exc.message)
            raise UnavailableError(
                f"member {self.me.name} cannot check credentials right now; retry",
                primary=self.primary_address(),
            ) from None

    def _cache_entry(self, name: str, password: str) -> bytes:
        return hmac.digest(
            self._cache_key,
            b"\0".join(x.encode("utf-8", "surrogatepass") for x in (name, password)),
            hashlib.sha256,
        )

    def _remembered(self, name: str, password: str, stored: str) -> bool:
        """Whether these credentials logged in before against this very stored hash."""
        key = self._cache_entry(name, password)
        if self._verified.get(key) != stored:
            return False
        self._verified.move_to_end(key)
        return True

    def _not_checked(self, peer: str, why: str, retry_in_s: float | None = None) -> NoReturn:
        self.refused(peer, "authentication", f"login from {peer} not checked: {why}")
        when = f"retry in {max(1, round(retry_in_s + 0.5))} s" if retry_in_s else "retry later"
        raise AuthenticationError(
            "authentication refused: too many failed logins from this host; this attempt was "
            f"not checked; {when}"
        )

    async def _attempt(self, name: str, password: str, host: str, peer: str) -> Principal | None:
        """One password check, in its turn; None (logged, counted) when it fails."""
        row = await self._lookup(name, peer)
        stored = row.password_hash if row is not None else None
        if stored is not None and (
            self._remembered(name, password, stored) or await self._check(name, stored, password)
        ):
            assert row is not None
            self.throttle.succeeded(host, name, time.monotonic())
            return Principal(name, row.role, "password")
        if stored is None:
            await self._check(name, None, password)  # the same work as a wrong password
        # A name that is no user's may be a password typed into the wrong field:
        # it is never written down (log, events), only that one failed.
        who = f"user {_short(name)}" if row is not None else UNKNOWN_NAME
        self.refused(peer, "authentication", f"authentication failed for {who} from {peer}")
        failure = self.throttle.failed(host, name, time.monotonic())
        t = self.throttle
        if failure.host_now_throttled:
            self.event(
                "auth_throttled",
                f"{failure.host_failures} failed logins from {host}: each further failure holds "
                f"it for a wait that doubles up to {t.max_s:g} s, and its attempts meanwhile are "
                f"refused unchecked (failures are forgotten by half every {t.half_life_s:g} s; "
                "a success forgives its own user's)",
                "warning",
                peer=peer,
            )
        if failure.user_now_throttled:
            self.event(
                "auth_throttled",
                f"{failure.user_failures} failed logins for {who} (from all hosts, the last "
                f"from {peer}): hosts that failed recently now take turns on this name, each "
                f"waiting up to {t.user_max_s:g} s; hosts that did not fail are not held back",
                "warning",
                peer=peer,
            )
        return None

    async def _check(self, name: str, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; the same work when there is no hash.

        scrypt runs on this class's own two threads, never on the event loop.
        """
        if self._pending >= MAX_PENDING_CHECKS:
            raise UnavailableError(
                f"member {self.me.name} is busy checking other logins; retry in a moment"
            )
        self._pending += 1
        try:
            if stored is None:
                return await self._off_loop(dummy_verify, password)
            try:
                ok = await self._off_loop(verify_password, stored, password)
            except ValueError as exc:
                log.error(
                    "the stored password hash of user %s is unusable (%s); set a new "
                    "password with `litemirror user passwd`",
                    _short(name),
                    exc,
                )
                return False
        finally:
            self._pending -= 1
        if ok:
            self._verified[self._cache_entry(name, password)] = stored
            while len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return ok

    def member_certificate(self, ssl_object: ssl.SSLObject | None) -> str | None:
        """The member of this mirror whose certificate the peer presented, if any."""
        config = self.config()
        if ssl_object is None or config.tls is None:
            return None
        for mb in config.members:
            if member_authorisation(ssl_object, mb, config) is None:
                return mb.name
        return None

    async def bootstrap_allowed(self, peer: str) -> bool:
        """Whether a credential-less connection from ``peer`` may act as admin now."""
        cfg = self.config().auth
        if not (cfg.require and cfg.localhost_bootstrap and is_loopback(peer)):
            return False
        try:
            return not await self.admin_exists()
        except Error:
            return False

    # ------------------------------------------------------------- checks

    async def authorize_action(
        self, principal: Principal, action: str, args: dict[str, Any], peer: str
    ) -> Principal:
        """The principal to run admin ``action`` as; raises if it may not."""
        needed = action_needs(action, args)
        if allows(principal.role, needed):
            return principal
        if principal.how == "member" and action in MEMBER_ACTIONS:
            return principal
        if principal.user is None and needed == "admin" and await self.bootstrap_allowed(peer):
            return BOOTSTRAP
        self.refused(
            peer,
            "permission" if principal.role is not None else "authentication",
            f"permission denied: {principal.describe()} from {peer} may not run {_short(action)}",
        )
        if principal.role is None:
            raise AuthenticationError(
                f"{action} needs a user with the {needed} role; log in: --user NAME, or "
                "LITEMIRROR_USER and LITEMIRROR_PASSWORD in the environment"
            )
        raise PermissionDeniedError(
            f"{action} needs the {needed} role; user {principal.user!r} has the "
            f"{principal.role} role"
        )

    def may_write(self, principal: Principal, database: str | None, peer: str, what: str) -> None:
        """Raise PermissionDeniedError unless ``principal`` may change ``database``.

        ``what`` names the refused request: "a statement that writes", "a script".
        """
        if database == SYSTEM_DB:
            self.refused(
                peer,
                "permission",
                f"permission denied: {principal.describe()} from {peer} tried to change "
                "the system database",
            )
            raise PermissionDeniedError(
                f"{SYSTEM_DB} is read-only for clients; change users with "
                "`litemirror user add/remove/passwd`"
            )
        if allows(principal.role, "write"):
            return
        self.refused(
            peer,
            "permission",
            f"permission denied: {principal.describe()} from {peer} may not run {what}",
        )
        raise PermissionDeniedError(
            f"user {principal.user!r} has the read role: it may run queries only, not {what}; "
            "nothing was changed (an admin can give it the write role)"
        )

    def refused(self, peer: str, kind: str, message: str) -> None:
        """Log a refusal: one ``auth_refused`` event per peer host and kind a minute,
        and the next one (or the minute's summary) says how many were held back."""
        host = peer.rpartition(":")[0] or peer
        log.warning("%s", message)
        self.events.emit_limited(
            "auth_refused",
            ("auth_refused", host, kind),
            message,
            "warning",
            peer=peer,
            refused=kind,
        )

    # ------------------------------------------------------------ changes

    async def _write(self, sql: str, params: list[Any]) -> int:
        db = await self.databases.get(SYSTEM_DB)
        _res, lsn = await db.write("exec", sql, params)
        return lsn

    async def _ensure(self) -> None:
        """Create the system database and its table if they are not there yet."""
        if not self.databases.exists(SYSTEM_DB):
            await self.create_database(SYSTEM_DB)
        db = await self.databases.get(SYSTEM_DB)
        await db.write("script", SCHEMA)  # no journal record when the table exists

    async def _existing(self, name: str) -> UserRow:
        row = await self.lookup(name)
        if row is None:
            raise ProgrammingError(f"no user named {name!r}; see `litemirror user list`")
        return row

    async def _last_admin(self, row: UserRow) -> bool:
        if row.role != "admin":
            return False
        admins = await self._rows("SELECT count(*) FROM users WHERE role = 'admin'", [])
        return int(admins[0][0]) <= 1

    async def run(self, action: str, args: dict[str, Any], actor: Principal) -> dict[str, Any]:
        """One ``user_*`` admin action (changes: on the primary only; checked by the caller)."""
        if action == "user_list":
            return {
                "users": [
                    {
                        "name": u.name,
                        "role": u.role,
                        "password": u.password_hash is not None,
                        "created_at": u.created_at,
                        "changed_at": u.changed_at,
                    }
                    for u in await self.listing()
                ]
            }
        name = check_user_name(args.get("name"))
        password = args.get("password")
        if password is not None:
            # Checked here, on the member, so every client (CLI, HTTP, a driver
            # sending admin requests) meets the same rules.
            try:
                check_password(password)
            except ValueError as exc:
                raise ProgrammingError(f"{action} {name}: {exc}; nothing was changed") from None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        async with self._lock:
            if action == "user_add":
                role = check_role(args.get("role"))
                if (password is None) != bool(args.get("no_password")):
                    raise ProgrammingError(
                        f"user_add {name}: give either a password or no_password (for a "
                        "user who logs in with a client certificate only)"
                    )
                await self._ensure()
                if await self.lookup(name) is not None:
                    raise ProgrammingError(
                        f"user {name!r} already exists; change its password with "
                        "`litemirror user passwd`, or remove it first"
                    )
                stored = await self._off_loop(hash_password, password) if password else None
                lsn = await self._write(
                    "INSERT INTO users (name, role, password_hash, created_at, changed_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [name, role, stored, now, now],
                )
                said = f"user {name!r} added with the {role} role by {actor.describe()}"
                result = {"user": name, "role": role, "lsn": lsn}
            elif action == "user_remove":
                row = await self._existing(name)
                if await self._last_admin(row):
                    raise ProgrammingError(
                        f"user {name!r} is the last admin; add another admin user first"
                    )
                lsn = await self._write("DELETE FROM users WHERE name = ?", [name])
                said = f"user {name!r} ({row.role}) removed by {actor.describe()}"
                result = {"user": name, "lsn": lsn}
            elif action == "user_passwd":
                row = await self._existing(name)
                if password is None:
                    raise ProgrammingError(f"user_passwd {name}: give the new password")
                stored = await self._off_loop(hash_password, password)
                lsn = await self._write(
                    "UPDATE users SET password_hash = ?, changed_at = ? WHERE name = ?",
                    [stored, now, name],
                )
                said = f"password of user {name!r} changed by {actor.describe()}"
                result = {"user": name, "lsn": lsn}
            else:
                raise ProgrammingError(f"unknown admin action {action!r}")
        self.event(action, said, user=name)
        return result
