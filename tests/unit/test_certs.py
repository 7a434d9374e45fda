"""Certificate tooling and TLS contexts: real certificates, real TLS handshakes.

Each handshake runs over a socketpair, the server side in a thread; after
the handshake one ping/pong goes through, because with TLS 1.3 the client
only learns that the server refused its certificate on its first read.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from litemirror.cli import certs as cli_certs
from litemirror.errors import ConfigError, ProtocolError
from litemirror.security import certs as sc
from litemirror.security.certs import PeerIdentity, Role

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@dataclass
class Outcome:
    server_peer: PeerIdentity | None = None
    client_peer: PeerIdentity | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.server_peer is not None and self.client_peer is not None


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str = "localhost"
) -> Outcome:
    out = Outcome()
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                assert s.recv(4) == b"ping"
                s.sendall(b"pong")
                out.server_peer = sc.peer_identity(s)
        except (ssl.SSLError, OSError, ProtocolError) as exc:
            out.errors.append(f"server: {exc}")

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=hostname) as c:
            c.sendall(b"ping")
            if c.recv(4) != b"pong":
                out.errors.append("client: no pong (connection closed)")
            else:
                out.client_peer = sc.peer_identity(c)
    except (ssl.SSLError, OSError) as exc:
        out.errors.append(f"client: {exc}")
    finally:
        t.join(10)
        a.close()
        b.close()
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    sc.create_ca(d / "ca")
    sc.issue(d / "ca", "a", Role.MEMBER, hosts=["localhost", "127.0.0.1"])
    sc.issue(d / "ca", "b", Role.MEMBER, hosts=["b.example", "::1"])
    sc.issue(d / "ca", "alice", Role.CLIENT)
    sc.issue(d / "ca", "old", Role.MEMBER, hosts=["localhost"], days=30, now=LONG_AGO)
    sc.issue(d / "ca", "oldclient", Role.CLIENT, days=30, now=LONG_AGO)
    sc.create_ca(d / "other", common_name="someone else's CA")
    sc.issue(d / "other", "a", Role.MEMBER, hosts=["localhost"])
    return d


def ctx(pki: Path, who: str, role: Role, server: bool, ca: str = "ca") -> ssl.SSLContext:
    issuer = "other" if who.startswith("other:") else "ca"
    name = who.removeprefix("other:")
    files = sc.leaf_files(pki / issuer, name, role)
    return sc.load_context(pki / ca / "ca.crt", files.cert, files.key, server=server)


def cert_of(path: Path) -> x509.Certificate:
    return sc.load_certificates(path)[0]


# ------------------------------------------------------------------ tooling


def test_ca_is_a_ten_year_ca_with_a_private_key(tmp_path: Path) -> None:
    files = sc.create_ca(tmp_path)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    cert = cert_of(files.cert)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=sc.CA_DAYS)
    assert cert.subject == cert.issuer


def test_ca_is_not_overwritten_without_force(tmp_path: Path) -> None:
    first = cert_of(sc.create_ca(tmp_path).cert)
    with pytest.raises(ConfigError, match="already exists"):
        sc.create_ca(tmp_path)
    assert cert_of(tmp_path / "ca.crt") == first
    assert cert_of(sc.create_ca(tmp_path, force=True).cert) != first


def test_rsa_keys_are_3072_bits(tmp_path: Path) -> None:
    sc.create_ca(tmp_path, key_type="rsa")
    key = cert_of(tmp_path / "ca.crt").public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    files = sc.issue(tmp_path, "m", Role.MEMBER, hosts=["m"], key_type="rsa")
    ku = cert_of(files.cert).extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment


def test_member_certificate_fields(pki: Path) -> None:
    files = sc.leaf_files(pki / "ca", "a", Role.MEMBER)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    cert = cert_of(files.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "member"
    )
    assert cert.issuer == cert_of(pki / "ca" / "ca.crt").subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=825)


def test_client_certificate_is_for_client_auth_only(pki: Path) -> None:
    cert = cert_of(sc.leaf_files(pki / "ca", "alice", Role.CLIENT).cert)
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "client"
    )


def test_validity_never_outlives_the_ca(tmp_path: Path) -> None:
    sc.create_ca(tmp_path, days=100)
    cert = cert_of(sc.issue(tmp_path, "c", Role.CLIENT, days=825).cert)
    assert cert.not_valid_after_utc == cert_of(tmp_path / "ca.crt").not_valid_after_utc


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "m", "hosts": ["bad host"]}, "bad host 'bad host'"),
        ({"name": "m", "hosts": ["-x.example"]}, "bad host"),
        ({"name": "m", "hosts": ["a" * 64 + ".example"]}, "bad host"),
        ({"name": "m", "hosts": []}, "at least one --host"),
        ({"name": "../escape", "hosts": ["h"]}, "not usable"),
        ({"name": "m", "hosts": ["h"], "days": 0}, "at least one day"),
    ],
)
def test_bad_requests_write_nothing(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    sc.create_ca(tmp_path)
    with pytest.raises(ConfigError, match=match):
        sc.issue(tmp_path, role=Role.MEMBER, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "members").exists()


def test_hosts_accept_ip_literals_and_dns_names() -> None:
    assert sc.parse_host("[::1]") == x509.IPAddress(__import__("ipaddress").ip_address("::1"))
    assert sc.parse_host("DB-1.Example.org") == x509.DNSName("db-1.example.org")


def test_missing_ca_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no CA in .*litemirror certs init"):
        sc.issue(tmp_path, "c", Role.CLIENT)


def test_a_ca_key_of_another_ca_is_refused(pki: Path, tmp_path: Path) -> None:
    sc.create_ca(tmp_path)
    (tmp_path / "ca.key").write_bytes((pki / "ca" / "ca.key").read_bytes())
    with pytest.raises(ConfigError, match="does not belong"):
        sc.issue(tmp_path, "c", Role.CLIENT)


def test_existing_leaf_needs_force(pki: Path) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        sc.issue(pki / "ca", "alice", Role.CLIENT)


def test_describe_reads_back_what_was_issued(pki: Path) -> None:
    info = cli_certs.describe(cert_of(sc.leaf_files(pki / "ca", "b", Role.MEMBER).cert))
    assert info.subject == "CN=b,OU=member,O=litemirror"
    assert info.sans == ["DNS:b.example", "IP:::1"]
    assert info.ext_key_usage == ["serverAuth", "clientAuth"]
    assert info.public_key == "EC secp256r1" and not info.is_ca
    assert len(info.sha256.split(":")) == 32
    assert (cli_certs.CA_DAYS, cli_certs.LEAF_DAYS) == (sc.CA_DAYS, sc.LEAF_DAYS)


# ---------------------------------------------------------------- handshakes


def test_members_authenticate_each_other(pki: Path) -> None:
    out = handshake(ctx(pki, "a", Role.MEMBER, True), ctx(pki, "b", Role.MEMBER, False))
    assert out.ok, out.errors
    assert out.server_peer == PeerIdentity("b", "member")
    assert out.client_peer == PeerIdentity("a", "member")
    assert sc.member_refusal(out.server_peer, "b") is None


def test_client_certificate_reaches_a_member(pki: Path) -> None:
    out = handshake(ctx(pki, "a", Role.MEMBER, True), ctx(pki, "alice", Role.CLIENT, False))
    assert out.ok, out.errors
    assert out.server_peer == PeerIdentity("alice", "client")


def test_client_certificate_cannot_act_as_a_member(pki: Path) -> None:
    # Connecting as a member: TLS accepts it (clientAuth), the member check does not.
    out = handshake(ctx(pki, "a", Role.MEMBER, True), ctx(pki, "alice", Role.CLIENT, False))
    assert out.server_peer is not None
    refusal = sc.member_refusal(out.server_peer, "alice")
    assert refusal is not None and "not a member certificate" in refusal
    # Serving as a member: OpenSSL refuses a certificate without serverAuth.
    out = handshake(ctx(pki, "alice", Role.CLIENT, True), ctx(pki, "b", Role.MEMBER, False))
    assert not out.ok
    assert any("unsuitable certificate purpose" in e for e in out.errors), out.errors


def test_member_certificate_for_another_name_is_refused(pki: Path) -> None:
    refusal = sc.member_refusal(PeerIdentity("b", "member"), "a")
    assert refusal is not None and "for member b" in refusal


@pytest.mark.parametrize("side", ["client", "server"])
def test_certificate_from_another_ca_is_refused(pki: Path, side: str) -> None:
    if side == "client":
        out = handshake(ctx(pki, "a", Role.MEMBER, True), ctx(pki, "other:a", Role.MEMBER, False))
    else:
        out = handshake(ctx(pki, "other:a", Role.MEMBER, True), ctx(pki, "b", Role.MEMBER, False))
    assert not out.ok
    refuser = "server" if side == "client" else "client"
    assert any(
        e.startswith(refuser) and "unable to get local issuer certificate" in e for e in out.errors
    ), out.errors


@pytest.mark.parametrize(
    ("server", "client"),
    [(("a", Role.MEMBER), ("oldclient", Role.CLIENT)), (("old", Role.MEMBER), ("b", Role.MEMBER))],
)
def test_expired_certificate_is_refused(
    pki: Path, server: tuple[str, Role], client: tuple[str, Role]
) -> None:
    out = handshake(ctx(pki, *server, server=True), ctx(pki, *client, server=False))
    assert not out.ok
    refuser = "server" if client[0] == "oldclient" else "client"
    assert any(e.startswith(refuser) and "certificate has expired" in e for e in out.errors), (
        out.errors
    )


def test_server_must_hold_the_dialled_name(pki: Path) -> None:
    out = handshake(
        ctx(pki, "b", Role.MEMBER, True), ctx(pki, "a", Role.MEMBER, False), hostname="localhost"
    )
    assert not out.ok
    assert any("Hostname mismatch" in e or "hostname" in e.lower() for e in out.errors)
    ok = handshake(
        ctx(pki, "b", Role.MEMBER, True), ctx(pki, "a", Role.MEMBER, False), hostname="b.example"
    )
    assert ok.ok, ok.errors


def test_client_without_certificate_is_refused_unless_allowed(pki: Path) -> None:
    bare = sc.load_context(pki / "ca" / "ca.crt", None, None, server=False)
    out = handshake(ctx(pki, "a", Role.MEMBER, True), bare)
    assert not out.ok
    a = sc.leaf_files(pki / "ca", "a", Role.MEMBER)
    lenient = sc.load_context(
        pki / "ca" / "ca.crt", a.cert, a.key, server=True, require_client_cert=False
    )
    out = handshake(lenient, bare)
    # Encrypted and the server verified, but the client has no identity to authorise.
    assert out.client_peer == PeerIdentity("a", "member")
    assert any("no verified certificate" in e for e in out.errors), out.errors


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(pki: Path) -> None:
    client = ctx(pki, "b", Role.MEMBER, False)
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    client.minimum_version = ssl.TLSVersion.TLSv1
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    assert not handshake(ctx(pki, "a", Role.MEMBER, True), client).ok


def test_plaintext_on_a_tls_socket_is_refused(pki: Path) -> None:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.sendall(b"\x00\x00\x00\x10plain msgpack...")
    b.shutdown(socket.SHUT_WR)
    with pytest.raises(ssl.SSLError):
        ctx(pki, "a", Role.MEMBER, True).wrap_socket(a, server_side=True)
    a.close()
    b.close()


def test_a_ca_bundle_trusts_both_cas_during_rotation(pki: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(
        (pki / "ca" / "ca.crt").read_bytes() + (pki / "other" / "ca.crt").read_bytes()
    )
    assert len(sc.load_certificates(bundle)) == 2
    a = sc.leaf_files(pki / "ca", "a", Role.MEMBER)
    other_a = sc.leaf_files(pki / "other", "a", Role.MEMBER)
    server = sc.load_context(bundle, a.cert, a.key, server=True)
    client = sc.load_context(bundle, other_a.cert, other_a.key, server=False)
    out = handshake(server, client)
    assert out.ok, out.errors


def test_load_context_errors_name_the_file(pki: Path, tmp_path: Path) -> None:
    a = sc.leaf_files(pki / "ca", "a", Role.MEMBER)
    b = sc.leaf_files(pki / "ca", "b", Role.MEMBER)
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.crt"):
        sc.load_context(tmp_path / "missing.crt", a.cert, a.key, server=True)
    with pytest.raises(ConfigError, match="cannot be used together"):
        sc.load_context(pki / "ca" / "ca.crt", a.cert, b.key, server=True)
    with pytest.raises(ConfigError, match="a server needs both"):
        sc.load_context(pki / "ca" / "ca.crt", None, None, server=True)
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="not a PEM CA certificate"):
        sc.load_context(junk, a.cert, a.key, server=True)
