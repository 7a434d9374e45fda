"""The member's HTTP API: status, load-balancer health checks, metrics, admin, Monitor page.

Started by the member when its config has ``http = "HOST:PORT"``. It runs
on the member's event loop and only reads what its
:class:`~litemirror.server.ops.ports.HttpPorts` give (role view, status
source, databases, receiver and replica figures, events), except the admin
POSTs, which run on its ``admin`` port exactly as ``litemirror`` commands do
over the control protocol.

Health checks answer with a status code a load balancer understands:

* ``GET /health``  200 while the process runs and serves HTTP.
* ``GET /primary`` 200 only on the primary that commits now (role primary
  and writable); 503 everywhere else, including a primary that stopped
  committing because it lost both its backup and the arbiter.
* ``GET /replica`` 200 on a replica (backup, dr, reporting) that serves
  reads, optionally only when its data is at most ``max_lag_ms`` old; 503
  on the primary and on a replica that is seeding, rolling back or fenced.

With ``auth.require`` on, ``/status``, ``/mirror`` and ``/events`` need a
login (:mod:`litemirror.server.ops.web.access`: the Monitor page's login cookie,
HTTP Basic auth, a client certificate, another member's certificate, or the
bearer token) and show each caller what its role may see
(:mod:`litemirror.security.visibility`); the health checks, ``/metrics`` and
the page itself stay open. ``POST /login`` and ``POST /logout`` are the
Monitor page's login form.

Admin POSTs need the bearer token when one is configured (server.http_token,
or the ``LITEMIRROR_HTTP_TOKEN`` environment variable) or HTTP Basic auth of
an admin user. Without either they are accepted from loopback only, and with
``auth.require`` not even from there (except while no admin user exists, see
:mod:`litemirror.server.front.users`). Refusals are 401 (with ``WWW-Authenticate``)
or 403 and an ``auth_refused`` event naming the peer. Every error is a JSON body
``{"error": kind, "message": ...}`` with a 4xx/5xx code, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import msgspec
from aiohttp import web

from litemirror import errors
from litemirror.config import ServerSection, parse_address
from litemirror.security.descriptors import HTTP_BACKLOG
from litemirror.security.roles import Principal
from litemirror.security.visibility import Audience, audience_of, events_view
from litemirror.server.front.users import BOOTSTRAP, is_loopback
from litemirror.server.net.listener import Listener
from litemirror.server.ops.http_guard import RequestDeadlines
from litemirror.server.ops.metrics import CONTENT_TYPE
from litemirror.server.ops.ports import HttpPorts, HttpServing
from litemirror.server.ops.web import REPLICA_ROLES, LagTracker, MirrorView, asset
from litemirror.server.ops.web.access import PAGE_HEADER, Access, LoginRequired, over_tls
from litemirror.server.ops.web.access import basic_credentials as _basic_credentials
from litemirror.server.ops.web.access import peer_of as _peer
from litemirror.server.role import Role
from litemirror.server.storage.registry import Registry

log = logging.getLogger("litemirror.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A reading endpoint, called with who asks (see ``HttpApi._for_readers``).
ReaderHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]
#: Receiver states in which a replica cannot serve consistent reads.
NOT_READABLE = ("seeding", "rolling back", "fenced", "starting", "deciding role")
MAX_BODY = 64 * 1024


class _Body(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class SwitchoverBody(_Body, frozen=True):
    to: str | None = None
    timeout_s: float = 30.0


class PromoteBody(_Body, frozen=True):
    to_primary: bool = True


class DbAddBody(_Body, frozen=True):
    name: str
    from_: str | None = msgspec.field(default=None, name="from")


class JournalSwitchBody(_Body, frozen=True):
    pass


class LoginBody(_Body, frozen=True):
    """The Monitor page's login form (the same bounds as a Hello's credentials)."""

    user: Annotated[str, msgspec.Meta(max_length=128)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


ADMIN_BODIES: dict[str, type[_Body]] = {
    "switchover": SwitchoverBody,
    "promote": PromoteBody,
    "db_add": DbAddBody,
    "journal_switch": JournalSwitchBody,
}

_STATUS_OF: list[tuple[type[errors.Error], int]] = [
    (errors.UnavailableError, 503),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.OperationalError, 409),
    (errors.ProgrammingError, 400),
    (errors.ConfigError, 400),
    (errors.InterfaceError, 400),
]

_enc = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=_enc.encode(data), status=status, content_type="application/json", headers=headers
    )


def error_response(status: int, kind: str, message: str, **extra: Any) -> web.Response:
    body = {"error": kind, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return json_response(body, status, **headers)


def _number(raw: str) -> float | None:
    """A finite float written the JSON way (no '_', 'inf' or 'nan'), else None."""
    if "_" in raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _Refused(Exception):
    """An admin POST without acceptable credentials: answered with ``status``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def admin_token(server: ServerSection, environ: Mapping[str, str] = os.environ) -> str | None:
    """The admin bearer token: ``server.http_token``, else ``LITEMIRROR_HTTP_TOKEN``."""
    token = server.http_token or environ.get("LITEMIRROR_HTTP_TOKEN")
    return str(token) if token else None


class HttpApi:
    def __init__(self, ports: HttpPorts) -> None:
        self.p = ports
        self.lag = LagTracker(ports.role, ports.following)
        self.view = MirrorView(ports, self.lag)
        self.metrics = ports.metrics
        self.token = ports.http_token
        self.access = Access(
            ports.me.name, lambda: ports.config().auth.require, ports.users, self.token
        )
        #: A request must arrive within limits.http_timeout_s (server/ops/http_guard.py).
        self.deadlines = RequestDeadlines(ports.config().limits.http_timeout_s)
        self.app = web.Application(
            middlewares=[self._errors, self.deadlines.middleware], client_max_size=MAX_BODY
        )
        r = self.app.router
        r.add_get("/", self.page)
        for name, ctype in (("monitor.js", "text/javascript"), ("monitor.css", "text/css")):
            r.add_get(f"/{name}", self._asset(name, ctype))
        r.add_get("/openapi.json", self._asset("openapi.json", "application/json"))
        r.add_get("/health", self.health)
        r.add_get("/status", self._for_readers(self.status))
        r.add_get("/mirror", self._for_readers(self.mirror))
        r.add_get("/primary", self.primary)
        r.add_get("/replica", self.replica)
        r.add_get("/events", self._for_readers(self.events))
        r.add_get("/metrics", self.prometheus)
        r.add_post("/login", self.log_in)
        r.add_post("/logout", self.log_out)
        for action in ADMIN_BODIES:
            r.add_post(f"/admin/{action}", self._admin(action))

    # ---------------------------------------------------------- plumbing

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
            if "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        except errors.Error as exc:
            status = next((c for cls, c in _STATUS_OF if isinstance(exc, cls)), 500)
            return error_response(
                status,
                type(exc).__name__,
                exc.message,
                primary=exc.primary,
                retryable=exc.retryable or None,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return error_response(
                500, "InternalError", "the request failed inside the member; see its log"
            )

    def _asset(self, name: str, ctype: str) -> Handler:
        body = asset(name)

        async def serve(_request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=body, content_type=ctype, headers={"Cache-Control": "no-cache"}
            )

        return serve

    async def page(self, _request: web.Request) -> web.StreamResponse:
        html = asset("monitor.html").replace(b"{{member}}", self.p.me.name.encode())
        return web.Response(body=html, content_type="text/html", charset="utf-8")

    def _summary(self) -> dict[str, Any]:
        now = self.p.role()
        state = now.state
        following = self.p.following()
        if following is not None and state != "fenced":
            state = following.state  # as status() reports it
        return {
            "member": self.p.me.name,
            "role": now.role,
            "state": state,
            "writable": now.writable,
            "epoch": now.epoch,
            "reason": now.reason,
        }

    # ----------------------------------------------------------- reading

    async def health(self, _request: web.Request) -> web.StreamResponse:
        return json_response({"status": "up", **self._summary()})

    # ----------------------------------------------------------- logins

    def _login_required(self, request: web.Request, message: str) -> web.Response:
        resp = error_response(401, "AuthenticationError", message)
        resp.headers.popall("WWW-Authenticate", None)
        if request.headers.get(PAGE_HEADER):
            # The page shows its own form; a Basic challenge would pop up the browser's.
            resp.headers.add("WWW-Authenticate", 'Form realm="litemirror"')
            return resp
        if self.token is not None:
            resp.headers.add("WWW-Authenticate", "Bearer")
        resp.headers.add("WWW-Authenticate", 'Basic realm="litemirror", charset="UTF-8"')
        return resp

    def _for_readers(self, handler: ReaderHandler) -> Handler:
        """``handler`` for logged-in callers only when auth.require is on (401 otherwise)."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                viewer = await self.access.viewer(request)
            except LoginRequired as exc:
                return self._login_required(request, exc.message)
            return await handler(request, viewer)

        return run

    def _audience(self, viewer: Principal) -> Audience:
        return audience_of(viewer, self.p.config().auth.require)

    async def log_in(self, request: web.Request) -> web.StreamResponse:
        """The Monitor page's login form: a password login, answered with a token cookie."""
        if not self.p.config().auth.require:
            raise errors.OperationalError(
                "this member does not require a login (auth.require is off): nothing to log in to"
            )
        if self.p.tls is not None and not over_tls(request):
            raise errors.PermissionDeniedError(
                "log in over https://: this mirror has TLS, and a password must not cross "
                "the network in clear"
            )
        if request.content_type != "application/json":
            # Also what keeps other sites' forms out: they cannot send JSON without asking.
            raise errors.ProgrammingError("login: send the user and password as JSON")
        try:
            body = msgspec.json.decode(await request.read(), type=LoginBody)
        except msgspec.DecodeError as exc:
            raise errors.ProgrammingError(f"login: bad request body: {exc}") from exc
        try:
            who, token = await self.access.log_in(body.user, body.password, _peer(request))
        except errors.AuthenticationError as exc:
            resp = error_response(401, "AuthenticationError", exc.message)
            resp.headers["WWW-Authenticate"] = 'Form realm="litemirror"'
            return resp
        tokens = self.access.tokens
        resp = json_response(
            {
                "user": who.user,
                "role": who.role,
                "idle_timeout_s": tokens.idle_s,
                "lifetime_s": tokens.lifetime_s,
            }
        )
        # A session cookie (no Max-Age): the member ends the login itself (idle, lifetime).
        resp.set_cookie(
            self.access.cookie_name(request),
            token,
            path="/",
            httponly=True,
            secure=over_tls(request),
            samesite="Strict",
        )
        return resp

    async def log_out(self, request: web.Request) -> web.StreamResponse:
        self.access.log_out(request)
        resp = json_response({"logged_out": True})
        resp.del_cookie(self.access.cookie_name(request), path="/")
        return resp

    # ----------------------------------------------------------- reading

    async def status(self, _request: web.Request, viewer: Principal) -> web.StreamResponse:
        p = self.p
        out = p.status.status(viewer)
        open_dbs = {d.name: d for d in p.databases.open_databases()}
        out["http"] = p.me.http
        out["lag_ms"] = self.lag.lag_ms()
        out["database_list"] = [
            {
                "name": name,
                "open": name in open_dbs,
                "importing": p.importing(name),
                "applied_lsn": open_dbs[name].applied_lsn if name in open_dbs else None,
                "commits": open_dbs[name].commits if name in open_dbs else None,
            }
            for name in p.databases.names()
        ]
        return json_response(out)

    async def mirror(self, _request: web.Request, viewer: Principal) -> web.StreamResponse:
        view = await self.view.get()
        return json_response(
            {
                **view,
                "events": events_view(view["events"], self._audience(viewer)),
                "viewer": {"user": viewer.user, "role": viewer.role, "how": viewer.how},
            }
        )

    async def primary(self, _request: web.Request) -> web.StreamResponse:
        now = self.p.role()
        ok = now.role is Role.PRIMARY and now.writable
        return json_response(self._summary(), 200 if ok else 503)

    async def replica(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("max_lag_ms")
        limit: float | None = None
        if raw is not None:
            limit = _number(raw)
            if limit is None or limit < 0:
                raise errors.ProgrammingError(
                    f"max_lag_ms={raw!r} must be a non-negative number of milliseconds"
                )
        lag = self.lag.lag_ms()
        now = self.p.role()
        following = self.p.following()
        state = following.state if following is not None else now.state
        body = {**self._summary(), "replication_state": state, "lag_ms": lag}
        if now.role not in REPLICA_ROLES or now.state == "fenced" or state in NOT_READABLE:
            return json_response(body, 503)
        if limit is not None and (lag is None or lag > limit):
            return json_response({**body, "max_lag_ms": limit}, 503)
        return json_response(body)

    async def events(self, request: web.Request, viewer: Principal) -> web.StreamResponse:
        raw = request.query.get("limit", "100")
        if not raw.isdigit() or not 0 < int(raw) <= 1000:
            raise errors.ProgrammingError(f"limit={raw!r} must be a whole number from 1 to 1000")
        recent = [msgspec.to_builtins(ev) for ev in list(self.p.recent_events())[-int(raw) :]]
        shown = events_view(recent, self._audience(viewer))
        return json_response({"member": self.p.me.name, "events": shown})

    async def prometheus(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    # ------------------------------------------------------------- admin

    async def _authorize(self, request: web.Request, action: str) -> str:
        """Who sends this admin POST (for the event); raises _Refused if nobody allowed.

        Accepted: the bearer token when one is configured; HTTP Basic auth of
        an admin user (checked like a protocol login, off the event loop);
        without either, loopback while ``auth.require`` is off (as before
        users existed), or the bootstrap rule while no admin user exists.
        """
        users = self.p.users
        peer = _peer(request)
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            name, password = _basic_credentials(value)
            try:
                who = await users.authenticate(name, password, None, peer)
            except errors.AuthenticationError as exc:
                raise _Refused(401, "AuthenticationError", exc.message) from None
            try:
                who = await users.authorize_action(who, action, {}, peer)
            except errors.PermissionDeniedError as exc:
                raise _Refused(403, "PermissionDeniedError", exc.message) from None
            return who.describe()
        if self.token is not None:
            if scheme != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            ):
                users.refused(
                    peer, "authentication", f"HTTP admin {action} from {peer} without the token"
                )
                raise _Refused(401, "unauthorized", "Bearer token required")
            return "the bearer token"
        if not self.p.config().auth.require:
            if not is_loopback(peer):
                users.refused(
                    peer, "authentication", f"HTTP admin {action} from {peer}: not loopback"
                )
                raise _Refused(
                    403,
                    "forbidden",
                    "Admin requests are accepted only from loopback when no token is set",
                )
            return f"loopback ({peer})"
        if await users.bootstrap_allowed(peer):
            return BOOTSTRAP.describe()
        users.refused(
            peer,
            "authentication",
            f"authentication required: HTTP admin {action} from {peer} gave no credentials",
        )
        raise _Refused(
            401,
            "AuthenticationError",
            "authentication required: send HTTP Basic credentials of an admin user "
            "(or the bearer token)",
        )

    def _refusal(self, exc: _Refused) -> web.Response:
        resp = error_response(exc.status, exc.kind, exc.message)
        if exc.status == 401:
            resp.headers.popall("WWW-Authenticate", None)
            if self.token is not None:
                resp.headers.add("WWW-Authenticate", "Bearer")
            resp.headers.add("WWW-Authenticate", 'Basic realm="litemirror", charset="UTF-8"')
        return resp

    def _admin(self, action: str) -> Handler:
        body_type = ADMIN_BODIES[action]

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                who = await self._authorize(request, action)
            except _Refused as exc:
                return self._refusal(exc)
            raw = await request.read()
            try:
                body = msgspec.json.decode(raw or b"{}", type=body_type)
            except msgspec.DecodeError as exc:
                raise errors.ProgrammingError(f"{action}: bad request body: {exc}") from exc
            args = msgspec.to_builtins(body)
            if action == "switchover":
                if not body.to:  # type: ignore[attr-defined]
                    peer = self.p.failover_peer
                    args["to"] = peer.name if peer is not None else ""
                if not 0 < args["timeout_s"] <= 600:
                    raise errors.ProgrammingError("switchover: timeout_s must be in (0, 600]")
            if action == "db_add":
                Registry.validate_name(args["name"])
            self.p.event("admin", f"HTTP admin {action} from {request.remote} by {who}", **args)
            return json_response(await self.p.admin.run(action, args))

        return run

    # ----------------------------------------------------------- sampling

    async def sample_forever(self, server: asyncio.AbstractServer) -> None:
        """Once a second: lag history for the chart, staleness, event counters."""
        while server.is_serving():
            try:
                self.view.sample()
                self.metrics.poll()
            except Exception:
                log.exception("HTTP sampler failed")
            await asyncio.sleep(1.0)


async def start_http(ports: HttpPorts, serving: HttpServing) -> asyncio.AbstractServer | None:
    """Serve the HTTP API on ``ports.me.http``; None when not configured.

    Call once the member listens for clients (its journal, hub and registry
    exist); close the returned server at shutdown.
    """
    me = ports.me
    if me.http is None:
        return None
    host, port = parse_address(f"member {me.name} http", me.http)
    api = HttpApi(ports)
    limits = ports.config().limits
    runner = web.AppRunner(
        api.app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.http_timeout_s,
    )
    await runner.setup()
    protocol = runner.server
    assert protocol is not None  # set by setup()
    tls = ports.tls
    body = b"This port speaks HTTPS only (tls.require); use https://\r\n"
    listener = Listener(
        api.deadlines.wrap(protocol),
        tls.server if tls is not None else None,
        tls is not None and tls.require,
        limits.handshake_timeout_s,
        plaintext_refusal=(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        ),
        on_refused=serving.tls_refused,
        what=f"member {me.name} HTTP",
        admission=serving.admission,
        http=True,
        on_limit=serving.on_limit,
    )
    try:
        server = await listener.start(host, port, backlog=HTTP_BACKLOG)
    except OSError as exc:
        await runner.cleanup()
        raise errors.ConfigError(
            f"members.http: member {me.name} cannot listen on {me.http}: "
            f"{exc.strerror or exc}; free the port or change http"
        ) from exc
    serving.spawn(asyncio.get_running_loop().create_task(api.sample_forever(server)))
    scheme = "https" if tls is not None else "http"
    log.info("HTTP API and Mirror Monitor on %s://%s/", scheme, me.http)
    return server
