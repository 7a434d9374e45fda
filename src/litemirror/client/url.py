"""Parse ``litemirror://`` connection URLs into a frozen :class:`ConnectInfo`.

Grammar (every part except the host list and the database is optional)::

    litemirror://[user[:password]@]host[:port][,host[:port]...]/database[?key=value&...]

Hosts are tried in the order given; IPv6 literals are written ``[::1]:7701``.
User, password and database are percent-decoded. Query keys:

==============  =========  ===============================================
key             default    meaning
==============  =========  ===============================================
read_only       false      the connection never writes; any member may serve
target          primary    ``primary`` or ``any`` (``any`` implies read_only)
connect_timeout 5          seconds to find a member that serves us
timeout         30         seconds to wait for the answer to one request
ack             (member's) ``received``, ``durable`` or ``applied`` on commit
retry           0          times an autocommit statement is resent after a
                           retryable error (lost member, failover)
statement_      (member's) seconds a statement may run on the member before
timeout                    it is stopped (OperationalError "interrupted");
                           only lowers the member's limit for the user
redirect        true       follow a member's "the primary is at X" answer;
                           ``false`` keeps to the URL's hosts (behind a load
                           balancer or a virtual IP)
tls_ca          (none)     CA certificate file: connect with TLS and verify
                           the member's certificate and host name against it
tls_cert        (none)     client certificate file (with ``tls_key``): log
                           in as the user the certificate names
tls_key         (none)     the client certificate's key file
==============  =========  ===============================================

Without ``tls_ca`` the connection is plaintext; a member with
``tls.require`` refuses it with an error that says so.
"""

from __future__ import annotations

import functools
import math
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from litemirror.errors import InterfaceError

SCHEME = "litemirror"
DEFAULT_PORT = 7701
TARGETS = ("primary", "any")
ACK_LEVELS = ("received", "durable", "applied")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ConnectInfo:
    """Everything the driver needs to open (and re-open) a connection."""

    hosts: tuple[tuple[str, int], ...]
    database: str
    read_only: bool = False
    target: str = "primary"
    connect_timeout: float = 5.0
    timeout: float = 30.0
    ack: str | None = None
    retry: int = 0
    redirect: bool = True
    user: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    statement_timeout: float | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for this connection; None for plaintext."""
        if self.tls_ca is None:
            return None
        return _context(self.tls_ca, self.tls_cert, self.tls_key)

    def __post_init__(self) -> None:
        # Checked here as well as in the parser so that ``dataclasses.replace``
        # with keyword overrides from ``connect()`` is validated the same way.
        if not self.hosts:
            raise InterfaceError("no host given; write litemirror://host:7701/database")
        if not self.database:
            raise InterfaceError("no database given; write litemirror://host:7701/database")
        if self.target not in TARGETS:
            raise InterfaceError(f"target={self.target!r} is invalid; use 'primary' or 'any'")
        if self.target == "any" and not self.read_only:
            object.__setattr__(self, "read_only", True)
        if self.ack is not None and self.ack not in ACK_LEVELS:
            raise InterfaceError(f"ack={self.ack!r} is invalid; use one of {', '.join(ACK_LEVELS)}")
        for name in ("connect_timeout", "timeout", "statement_timeout"):
            value = getattr(self, name)
            if name == "statement_timeout" and value is None:
                continue
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InterfaceError(f"{name}={value!r} is invalid; give a positive number")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InterfaceError("tls_cert and tls_key must be given together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise InterfaceError("tls_cert needs tls_ca: give the CA that signed the members")
        if not isinstance(self.retry, int) or self.retry < 0:
            raise InterfaceError(f"retry={self.retry!r} is invalid; give a whole number >= 0")

    def describe_hosts(self) -> str:
        return ",".join(format_address(h, p) for h, p in self.hosts)


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """Parse ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    text = text.strip()
    if not text:
        raise InterfaceError("empty host in the host list; remove the stray comma")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InterfaceError(f"host {text!r} opens '[' without closing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if not host:
            raise InterfaceError(f"host {text!r} has an empty IPv6 address")
        if rest and not rest.startswith(":"):
            raise InterfaceError(f"host {text!r} has text after ']' that is not ':port'")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise InterfaceError(f"host {text!r}: write IPv6 addresses in brackets, like [::1]:7701")
    else:
        host, colon, after = text.partition(":")
        if not host:
            raise InterfaceError(f"host {text!r} has no host name before ':'")
        port_text = after if colon else None
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InterfaceError(f"port {port_text!r} of host {text!r} is not a number in 1-65535")
    return host, int(port_text)


def _parse_bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InterfaceError(f"{key}={value!r} is invalid; use true or false")


def _parse_number(key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InterfaceError(f"{key}={value!r} is invalid; give a number of seconds") from None
    return number


def _parse_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InterfaceError(f"{key}={value!r} is invalid; give a whole number") from None


def parse_url(url: str) -> ConnectInfo:
    """Parse a ``litemirror://`` URL. Raises :class:`InterfaceError` naming the bad part."""
    if not isinstance(url, str):
        raise InterfaceError(f"the URL must be a string, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InterfaceError(f"{url!r} is not a URL; write litemirror://host:7701/database")
    if scheme.lower() != SCHEME:
        raise InterfaceError(f"unknown scheme {scheme!r} in {url!r}; use litemirror://")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise InterfaceError(f"URL fragment '#{fragment}' is not allowed")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")

    user: str | None = None
    password: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        raw_user, colon, raw_password = userinfo.partition(":")
        user = unquote(raw_user) or None
        password = unquote(raw_password) if colon else None
        if user is None:
            raise InterfaceError("the URL has '@' but no user name before it")
    if not netloc:
        raise InterfaceError(f"no host in {url!r}; write litemirror://host:7701/database")
    hosts = tuple(parse_address(part) for part in _split_hosts(netloc))

    database = unquote(path) if slash else ""
    if not database:
        raise InterfaceError(f"no database in {url!r}; write litemirror://host:7701/database")
    if "/" in database:
        raise InterfaceError(f"database name {database!r} must not contain '/'")

    options: dict[str, object] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InterfaceError(f"query string {query!r} is malformed: {exc}") from None
    for key, value in pairs:
        if key in options:
            raise InterfaceError(f"option {key!r} is given twice")
        if key in ("read_only", "redirect"):
            options[key] = _parse_bool(key, value)
        elif key == "target":
            options[key] = value.lower()
        elif key in ("timeout", "connect_timeout", "statement_timeout"):
            options[key] = _parse_number(key, value)
        elif key == "ack":
            options[key] = value.lower()
        elif key == "retry":
            options[key] = _parse_int(key, value)
        elif key in ("tls_ca", "tls_cert", "tls_key"):
            if not value:
                raise InterfaceError(f"{key} is empty; give a file path")
            options[key] = value
        else:
            known = (
                "read_only, target, connect_timeout, timeout, statement_timeout, ack, retry, "
                "redirect, tls_ca, tls_cert, tls_key"
            )
            raise InterfaceError(f"unknown option {key!r}; known options: {known}")
    return ConnectInfo(
        hosts=hosts,
        database=database,
        user=user,
        password=password,
        **options,  # type: ignore[arg-type]
    )


@functools.lru_cache(maxsize=32)
def _context(ca: str, cert: str | None, key: str | None) -> ssl.SSLContext:
    from litemirror.errors import ConfigError
    from litemirror.security.certs import load_context

    try:
        return load_context(ca, cert, key, server=False)
    except ConfigError as exc:
        raise InterfaceError(exc.message) from None


def _split_hosts(netloc: str) -> list[str]:
    """Split on commas that are not inside ``[...]`` (IPv6 never has commas, but be exact)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(netloc):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(netloc[start:i])
            start = i + 1
    parts.append(netloc[start:])
    return parts
