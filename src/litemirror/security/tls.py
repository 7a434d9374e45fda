"""TLS settings of a process built from the mirror config, and member authorisation.

A member or the arbiter gets two contexts from :func:`setup`:

- ``server``: presented on its ports. A client certificate is *optional*
  (clients may log in with a password) but, when sent, verified against the
  CA; who may do what with it is decided after the first message.
- ``client``: used when it dials another member or the arbiter. It presents
  its own certificate and verifies the other side's, including the host
  name dialled (the certificate's SANs).

A peer that announces itself as member ``NAME`` (replication stream, peer
link, arbiter session) is accepted only if its verified certificate's subject
is the one authorised for ``NAME``: ``members[].tls_subject`` when set
(compared attribute by attribute, like IRIS compares X.509 DNs), else any
certificate with ``CN=NAME`` and ``OU=member`` from the mirror's CA.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509

from litemirror.config import Config, Member, Tls
from litemirror.errors import ConfigError, ProtocolError

from .certs import Role, load_certificates, load_context, member_refusal, peer_identity

_SPLIT = re.compile(r"(?<!\\),")


@dataclass(frozen=True)
class TlsSetup:
    server: ssl.SSLContext
    client: ssl.SSLContext
    require: bool
    tls: Tls


def _member(config: Config, name: str) -> Member | None:
    return next((m for m in config.members if m.name == name), None)


def files(config: Config, name: str) -> tuple[Path, Path]:
    """Certificate and key of process ``name`` (member or arbiter) per the [tls] section."""
    assert config.tls is not None
    return config.tls.files_for(name, _member(config, name))


def setup(config: Config, name: str) -> TlsSetup | None:
    """Contexts for process ``name`` (a member name or ``tls.arbiter_name``); None without [tls]."""
    t = config.tls
    if t is None:
        return None
    cert, key = files(config, name)
    return TlsSetup(
        server=load_context(t.ca, cert, key, server=True, require_client_cert=False),
        client=load_context(t.ca, cert, key, server=False),
        require=t.require,
        tls=t,
    )


def reload(live: TlsSetup, config: Config, name: str) -> TlsSetup:
    """Load the certificate, key and CA named by ``config`` into the live contexts.

    Connections made from now on present the new certificate and trust the CA
    file's certificates (added to the ones already trusted: a CA cannot be
    dropped without a restart, which is what rotating through a bundle needs).
    The files are checked first by building throwaway contexts, so a bad file
    raises ConfigError and leaves the live contexts as they were.
    """
    fresh = setup(config, name)
    if fresh is None:
        raise ConfigError("tls: the [tls] section was removed; restart to turn TLS off")
    cert, key = files(config, name)
    for ctx in (live.server, live.client):
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
        ctx.load_verify_locations(cafile=str(fresh.tls.ca))
    return live


class CertificateInfo(NamedTuple):
    """What an operator needs to know about the certificate a process presents."""

    subject: str
    serial: str
    not_after: dt.datetime

    def status(self, now: dt.datetime) -> dict[str, object]:
        return {
            "subject": self.subject,
            "serial": self.serial,
            "not_after": self.not_after.isoformat(),
            "days_left": round((self.not_after - now).total_seconds() / 86400, 1),
        }


def certificate_info(config: Config, name: str) -> CertificateInfo | None:
    """The certificate ``name`` presents per ``config`` (None without [tls])."""
    if config.tls is None:
        return None
    c = load_certificates(files(config, name)[0])[0]
    return CertificateInfo(
        c.subject.rfc4514_string(), format(c.serial_number, "x"), c.not_valid_after_utc
    )


def client_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A context for drivers and the CLI: trust ``ca``; present ``cert`` if given."""
    return load_context(ca, cert, key, server=False)


def normalise_subject(subject: str) -> tuple[tuple[str, str], ...]:
    """An RFC 4514 subject as sorted (ATTRIBUTE, value) pairs, for comparison."""
    pairs = []
    for part in _SPLIT.split(subject):
        attr, _, value = part.strip().partition("=")
        pairs.append((attr.strip().upper(), value.strip()))
    return tuple(sorted(pairs))


def subject_of(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    """The peer certificate's subject as an RFC 4514 string, or None without one."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def member_authorisation(
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None, claimed: Member | str, config: Config
) -> str | None:
    """Why the peer on ``ssl_object`` may not act as member ``claimed``; None if it may.

    Without a [tls] section every peer may (the plaintext behaviour).
    """
    if config.tls is None:
        return None
    name = claimed if isinstance(claimed, str) else claimed.name
    if ssl_object is None:
        return f"member {name} connected without TLS, but this mirror has a [tls] section"
    try:
        identity = peer_identity(ssl_object)
    except ProtocolError as exc:
        return exc.message
    member = claimed if not isinstance(claimed, str) else _member(config, claimed)
    wanted = member.tls_subject if member is not None else None
    if wanted is not None:
        got = subject_of(ssl_object) or ""
        if normalise_subject(got) != normalise_subject(wanted):
            return (
                f"certificate subject {got!r} is not the one authorised for member {name} "
                f"({wanted!r} in members[].tls_subject)"
            )
        return None
    return member_refusal(identity, name)


def arbiter_refusal(ssl_object: ssl.SSLObject | ssl.SSLSocket, config: Config) -> str | None:
    """Why the server a member dialled as the arbiter is not the arbiter; None if it is."""
    assert config.tls is not None
    try:
        identity = peer_identity(ssl_object)
    except ProtocolError as exc:
        return exc.message
    if identity.ou != Role.MEMBER or identity.cn != config.tls.arbiter_name:
        return (
            f"the arbiter presented a certificate for CN={identity.cn} OU={identity.ou}; "
            f"expected CN={config.tls.arbiter_name} OU=member (tls.arbiter_name)"
        )
    return None
