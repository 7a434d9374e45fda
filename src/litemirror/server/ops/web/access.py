"""Who is asking on the HTTP port: logins for the reading endpoints and the Monitor page.

With ``auth.require`` off every caller sees everything, as before users
existed. With it on, ``/status``, ``/mirror`` and ``/events`` answer only a
caller that is, in the order checked:

1. the holder of the bearer token (``server.http_token`` or
   ``LITEMIRROR_HTTP_TOKEN``): sees what an admin sees;
2. another member of the mirror, by its certificate over HTTPS: sees what an
   admin sees (the Monitor page served by one member reads the others'
   events this way);
3. a browser logged in on the Monitor page: the login cookie holds a random
   token (:mod:`litemirror.security.login_tokens`); the user's row is read
   at every use, so a removed user or a changed password ends it at once;
4. HTTP Basic auth of a user, checked like any login (same back-off);
5. a client certificate (``OU=client``) whose CN names a user.

Anyone else gets 401. What a logged-in user sees depends on its role
(:mod:`litemirror.security.visibility`). The health endpoints, ``/metrics``
and the page itself (which holds no data, only the login form) stay open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web

from litemirror import errors
from litemirror.security.certs import peer_identity
from litemirror.security.login_tokens import LoginTokens
from litemirror.security.roles import MEMBER, OPEN, Principal
from litemirror.server.ops.ports import HttpUsers

#: Who holds the bearer token.
TOKEN = Principal(None, "admin", "token")
#: Sent by the Monitor page with its requests: a 401 then does not offer Basic auth, which
#: would make the browser pop up its own password dialog over the page's login form.
PAGE_HEADER = "X-Litemirror-Page"


class LoginRequired(Exception):
    """No acceptable credentials came with a request that needs them (answered with 401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def peer_of(request: web.Request) -> str:
    """The client's "host:port" (the port too, unlike ``request.remote``)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return f"{request.remote or 'unknown'}:0"


def basic_credentials(value: str) -> tuple[str, str]:
    """(user, password) from the value of a Basic Authorization header ('', '' if malformed)."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else ("", "")


def over_tls(request: web.Request) -> bool:
    return bool(request.transport and request.transport.get_extra_info("ssl_object"))


class Access:
    """The HTTP port's logins: who a request comes from, and the Monitor page's tokens."""

    def __init__(
        self,
        member: str,
        required: Callable[[], bool],
        users: HttpUsers,
        token: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``member``: this member's name (its cookie's); ``required``: whether
        ``auth.require`` is on; ``token``: the bearer token, None without one;
        ``clock``: monotonic seconds (the login tokens' idle and lifetime)."""
        self.member = member
        self._required = required
        self.users = users
        self.token = token
        self.clock = clock
        self.tokens = LoginTokens()
        self._key = secrets.token_bytes(32)

    @property
    def required(self) -> bool:
        return self._required()

    def cookie_name(self, request: web.Request) -> str:
        # One cookie per member: browsers share cookies between ports of one host.
        # Over HTTPS the __Host- prefix makes the browser refuse it without Secure,
        # from another path, or set for a parent domain.
        name = f"litemirror-{self.member}"
        return f"__Host-{name}" if over_tls(request) else name

    def _fingerprint(self, stored: str) -> bytes:
        return hmac.digest(self._key, stored.encode(), hashlib.sha256)

    async def viewer(self, request: web.Request) -> Principal:
        """Who sends ``request``; raises :class:`LoginRequired` when nobody acceptable."""
        if not self.required:
            return OPEN
        users = self.users
        peer = peer_of(request)
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        scheme = scheme.lower()
        if self.token is not None and scheme == "bearer":
            if hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return TOKEN
            raise LoginRequired("the bearer token was not accepted")
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if users.member_certificate(ssl_object) is not None:
            return MEMBER
        cookie = request.cookies.get(self.cookie_name(request))
        if cookie and scheme != "basic":
            who = await self._by_token(cookie)
            if who is not None:
                return who
        if scheme == "basic":
            name, password = basic_credentials(value)
            try:
                return await users.authenticate(name, password, None, peer)
            except errors.AuthenticationError as exc:
                raise LoginRequired(exc.message) from None
        if ssl_object is not None and ssl_object.getpeercert():
            try:
                identity = peer_identity(ssl_object)
            except errors.ProtocolError:
                identity = None  # no single CN and OU: names nobody
            if identity is not None and identity.ou == "client":
                try:
                    return await users.authenticate(identity.cn, None, identity.cn, peer)
                except errors.AuthenticationError as exc:
                    raise LoginRequired(exc.message) from None
        raise LoginRequired(
            "authentication required: this member requires a login (auth.require); log in on "
            "the Monitor page, or send HTTP Basic credentials of a user"
        )

    async def _by_token(self, token: str) -> Principal | None:
        login = self.tokens.check(token, self.clock())
        if login is None:
            return None
        row = await self.users.lookup(login.user)
        if (
            row is None
            or row.password_hash is None
            or not hmac.compare_digest(self._fingerprint(row.password_hash), login.credential)
        ):
            self.tokens.revoke(token)  # removed, or the password changed since
            return None
        return Principal(row.name, row.role, "password")

    async def log_in(self, user: str, password: str, peer: str) -> tuple[Principal, str]:
        """Check a password (with the back-off) and issue a token; raises AuthenticationError."""
        who = await self.users.authenticate(user, password, None, peer)
        row = await self.users.lookup(user)
        if row is None or row.password_hash is None:  # removed in the meantime
            raise errors.AuthenticationError("authentication failed: the login was not accepted")
        token = secrets.token_urlsafe(32)
        self.tokens.issue(token, user, self._fingerprint(row.password_hash), self.clock())
        return who, token

    def log_out(self, request: web.Request) -> None:
        cookie = request.cookies.get(self.cookie_name(request))
        if cookie:
            self.tokens.revoke(cookie)
