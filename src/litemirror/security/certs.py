"""X.509 certificates for mutual TLS: a private CA, member and client certificates.

Theory of operation
-------------------
A mirror trusts one private certificate authority. ``create_ca`` makes it;
``issue`` signs member and client certificates with it. Everything lives in
one directory::

    DIR/ca.crt              the CA certificate: give it to every member, arbiter, client
    DIR/ca.key              the CA key (0600): keep it off the members if you can
    DIR/members/NAME.crt    a member's (or the arbiter's) certificate
    DIR/members/NAME.key    its key (0600)
    DIR/clients/NAME.crt    a client's certificate
    DIR/clients/NAME.key    its key (0600)

Who a peer is comes from its certificate's subject: ``CN`` is the name (the
member name of the mirror config, or a user name) and ``OU`` is the role,
``member`` or ``client``. The extended key usage says the same thing to TLS
itself: members get serverAuth and clientAuth (they accept connections and
open them to each other and to the arbiter); clients only clientAuth, so
OpenSSL refuses a client certificate presented by a server. A client
certificate presented by something that *connects* as a member passes TLS,
which is why :func:`member_refusal` must be asked after the handshake.

Keys are EC P-256 by default (fast handshakes) or RSA 3072. Keys are written
unencrypted with mode 0600, because a member must restart unattended. Files
are written to a temporary name and renamed, so a reader sees either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from litemirror.durable import write_atomic
from litemirror.errors import ConfigError, ProtocolError

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_DAYS = 3650
LEAF_DAYS = 825
ORGANISATION = "litemirror"
#: Certificates start a little in the past so a peer whose clock is slightly
#: behind does not see a brand-new certificate as "not yet valid".
CLOCK_SKEW = dt.timedelta(minutes=5)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


class Role(enum.StrEnum):
    MEMBER = "member"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class CertFiles:
    cert: Path
    key: Path


class PeerIdentity(NamedTuple):
    """Who the verified peer certificate says the peer is."""

    cn: str
    ou: str


# ------------------------------------------------------------------ layout


def ca_files(directory: str | Path) -> CertFiles:
    d = Path(directory)
    return CertFiles(d / "ca.crt", d / "ca.key")


def leaf_files(directory: str | Path, name: str, role: Role) -> CertFiles:
    d = Path(directory) / f"{role.value}s"
    return CertFiles(d / f"{check_name(name)}.crt", d / f"{name}.key")


def check_name(name: str) -> str:
    """Return ``name`` if it is a usable certificate name (it becomes a file name too)."""
    if not _NAME.match(name):
        raise ConfigError(
            f"name {name!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_host(host: str) -> x509.GeneralName:
    """An IP address or DNS name as a subjectAltName entry; ConfigError if it is neither."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    labels = host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ConfigError(
            f"bad host {host!r}: it is neither an IP address nor a DNS name "
            "(letters, digits and '-' in dot-separated labels); nothing was written"
        )
    return x509.DNSName(host.lower())


# ------------------------------------------------------------------- issue


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigError(f"key type {key_type!r} is not supported: use 'ec' or 'rsa'")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden temp name, unique to this process: never taken for a certificate.
    write_atomic(path, data, tmp=path.with_name(f".{path.name}.tmp{os.getpid()}"), mode=mode)


def _refuse_overwrite(files: CertFiles, what: str, force: bool) -> None:
    existing = [str(p) for p in (files.cert, files.key) if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{what} already exists ({', '.join(existing)}); nothing was written. "
            "Use --force to replace it"
        )


def _save(files: CertFiles, key: PrivateKey, cert: x509.Certificate) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: a certificate on disk always has its key next to it.
    _write_atomic(files.key, key_pem, 0o600)
    _write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def create_ca(
    directory: str | Path,
    *,
    common_name: str = "litemirror CA",
    key_type: KeyType = "ec",
    days: int = CA_DAYS,
    force: bool = False,
    now: dt.datetime | None = None,
) -> CertFiles:
    """Create the CA in ``directory``; refuse to replace one unless ``force``."""
    files = ca_files(directory)
    _refuse_overwrite(files, "a CA", force)
    key = _new_key(key_type)
    start = _now(now) - CLOCK_SKEW
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _save(files, key, cert)
    return files


def _key_usage(*, cert_sign: bool = False, rsa_key: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def load_ca(directory: str | Path) -> tuple[x509.Certificate, PrivateKey]:
    """The CA certificate and key from ``directory``, checked to belong together."""
    files = ca_files(directory)
    if not files.cert.exists() or not files.key.exists():
        raise ConfigError(
            f"no CA in {directory}: {files.cert.name} or {files.key.name} is missing. "
            f"Create one with `litemirror certs init --dir {directory}`"
        )
    (cert,) = load_certificates(files.cert)[:1]
    try:
        key = serialization.load_pem_private_key(_read(files.key), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load the CA key {files.key}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"the CA key {files.key} is not an EC or RSA key")
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ConfigError(f"the CA key {files.key} does not belong to {files.cert}")
    return cert, key


def issue(
    directory: str | Path,
    name: str,
    role: Role,
    *,
    hosts: Sequence[str] = (),
    days: int = LEAF_DAYS,
    key_type: KeyType = "ec",
    force: bool = False,
    now: dt.datetime | None = None,
) -> CertFiles:
    """Issue a certificate for member or client ``name``, signed by the CA in ``directory``.

    The validity ends no later than the CA's: a certificate the CA can no
    longer vouch for would fail verification anyway.
    """
    files = leaf_files(directory, name, role)
    sans = [parse_host(h) for h in hosts]
    if role is Role.MEMBER and not sans:
        raise ConfigError(
            f"member {name}: give at least one --host (the DNS names and IP addresses "
            "other members, the arbiter and clients use to reach it)"
        )
    if days < 1:
        raise ConfigError(f"--days {days}: a certificate must be valid for at least one day")
    ca_cert, ca_key = load_ca(directory)
    start = _now(now) - CLOCK_SKEW
    end = min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    if end <= start:
        raise ConfigError(
            f"the CA in {directory} expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}; "
            "create a new CA and re-issue every certificate (see docs/security.md)"
        )
    _refuse_overwrite(files, f"a {role.value} certificate for {name}", force)
    key = _new_key(key_type)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role is Role.MEMBER:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(rsa_key=isinstance(key, rsa.RSAPrivateKey)), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _save(files, key, builder.sign(ca_key, hashes.SHA256()))
    return files


# -------------------------------------------------------------------- read


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a CA bundle holds several)."""
    data = _read(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{path} holds no readable PEM certificate: {exc}") from exc
    return certs


# ---------------------------------------------------------------------- TLS


def load_context(
    ca: str | Path,
    cert: str | Path | None,
    key: str | Path | None,
    server: bool,
    *,
    require_client_cert: bool = True,
) -> ssl.SSLContext:
    """A TLS 1.2+ context that trusts only ``ca`` (a file, possibly a bundle).

    Server side: presents ``cert``/``key`` and demands a client certificate
    signed by the CA (unless ``require_client_cert`` is False, for clients
    that log in with a password). Client side: verifies the server's
    certificate and that it names the host dialled (pass ``server_hostname``
    when wrapping); ``cert``/``key`` may be None for a client without one.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Strict RFC 5280 checks: our own certificates satisfy them, so anything
    # that does not was not made by `litemirror certs`.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if server:
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    else:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    _read(ca)  # a clear message for a missing file before OpenSSL's terse one
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        raise ConfigError(f"tls.ca: {ca} is not a PEM CA certificate: {exc}") from exc
    if cert is None or key is None:
        if server or cert is not None or key is not None:
            raise ConfigError("tls: cert and key must be given together (a server needs both)")
        return ctx
    _read(cert)
    _read(key)
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"tls.cert/tls.key: {cert} and {key} cannot be used together ({exc.reason}); "
            "they must be a PEM certificate and its own unencrypted key"
        ) from exc
    return ctx


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> PeerIdentity:
    """(CN, OU) of the peer's verified certificate.

    Raises ProtocolError when there is no verified certificate or its subject
    does not hold exactly one CN and one OU: such a peer has no identity we
    could authorise.
    """
    cert = ssl_object.getpeercert()
    if not cert:
        raise ProtocolError("the peer presented no verified certificate; it cannot be identified")
    found: dict[str, list[str]] = {"commonName": [], "organizationalUnitName": []}
    # The subject is a tuple of RDNs, each a tuple of (attribute, value) pairs.
    subject = cast("tuple[tuple[tuple[str, str], ...], ...]", cert.get("subject", ()))
    for rdn in subject:
        for attr, value in rdn:
            if attr in found:
                found[attr].append(value)
    cns, ous = found["commonName"], found["organizationalUnitName"]
    if len(cns) != 1 or len(ous) != 1:
        raise ProtocolError(
            f"the peer certificate's subject has {len(cns)} CN and {len(ous)} OU entries; "
            "exactly one of each is needed to know who it is"
        )
    return PeerIdentity(cns[0], ous[0])


def member_refusal(identity: PeerIdentity, claimed: str) -> str | None:
    """Why a peer with ``identity`` may not act as member ``claimed``, or None if it may."""
    if identity.ou != Role.MEMBER:
        return (
            f"certificate CN={identity.cn} OU={identity.ou} is not a member certificate; "
            f"it cannot connect as member {claimed}"
        )
    if identity.cn != claimed:
        return (
            f"certificate is for member {identity.cn} but the peer announced itself "
            f"as member {claimed}"
        )
    return None
