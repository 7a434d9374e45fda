"""``litemirror certs``: create the CA, issue member and client certificates, show one."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where used: every `litemirror` command builds this parser, and
    # loading cryptography costs about 0.1 s that only `certs` needs.
    from cryptography import x509
    from rich.console import Console

    from litemirror.security.certs import CertFiles

CA_DAYS = 3650  # kept equal to security.certs.CA_DAYS / LEAF_DAYS (a test checks)
LEAF_DAYS = 825


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What ``certs show`` prints about one certificate."""

    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sans: list[str]
    key_usage: list[str]
    ext_key_usage: list[str]
    is_ca: bool
    public_key: str
    sha256: str


_KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def describe(cert: x509.Certificate) -> CertInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    exts = cert.extensions
    sans: list[str] = []
    key_usage: list[str] = []
    eku: list[str] = []
    is_ca = False
    for ext in exts:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            sans += [f"DNS:{n}" for n in value.get_values_for_type(x509.DNSName)]
            sans += [f"IP:{ip}" for ip in value.get_values_for_type(x509.IPAddress)]
        elif isinstance(value, x509.KeyUsage):
            key_usage = [f for f in _KEY_USAGE_FIELDS if getattr(value, f)]
        elif isinstance(value, x509.ExtendedKeyUsage):
            eku = [getattr(oid, "_name", None) or oid.dotted_string for oid in value]
        elif isinstance(value, x509.BasicConstraints):
            is_ca = value.ca
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key_desc = f"EC {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        key_desc = f"RSA {key.key_size}"
    else:
        key_desc = type(key).__name__
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=sans,
        key_usage=key_usage,
        ext_key_usage=eku,
        is_ca=is_ca,
        public_key=key_desc,
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def _validity(info: CertInfo, now: dt.datetime) -> str:
    span = f"{info.not_before:%Y-%m-%d %H:%M} UTC to {info.not_after:%Y-%m-%d %H:%M} UTC"
    if now < info.not_before:
        return f"{span} [red](not yet valid)[/]"
    if now > info.not_after:
        return f"{span} [red](EXPIRED)[/]"
    return f"{span} ({(info.not_after - now).days} days left)"


def show_certificates(path: str, console: Console) -> int:
    from rich.table import Table

    from litemirror.security.certs import load_certificates

    now = dt.datetime.now(dt.UTC)
    for cert in load_certificates(path):
        info = describe(cert)
        table = Table(title=f"{path}", show_header=False, title_justify="left")
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        table.add_row("subject", info.subject)
        table.add_row("issuer", info.issuer)
        table.add_row("validity", _validity(info, now))
        table.add_row("subject alt names", ", ".join(info.sans) or "-")
        table.add_row("key usage", ", ".join(info.key_usage) or "-")
        table.add_row("extended key usage", ", ".join(info.ext_key_usage) or "-")
        table.add_row("certificate authority", "yes" if info.is_ca else "no")
        table.add_row("public key", info.public_key)
        table.add_row("serial", info.serial)
        table.add_row("SHA-256 fingerprint", info.sha256)
        console.print(table)
    return 0


def _until(files: CertFiles) -> str:
    from litemirror.security.certs import load_certificates

    (cert,) = load_certificates(files.cert)[:1]
    return f"{cert.not_valid_after_utc:%Y-%m-%d}"


def cmd_init(args: argparse.Namespace) -> int:
    from litemirror.security import certs as sc

    files = sc.create_ca(
        args.dir, common_name=args.name, key_type=args.key_type, days=args.days, force=args.force
    )
    print(f"CA created: {files.cert} (key {files.key}, mode 0600), valid until {_until(files)}")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from litemirror.security import certs as sc

    role = sc.Role(args.role)
    hosts = args.host if role is sc.Role.MEMBER else []
    files = sc.issue(
        args.dir,
        args.name,
        role,
        hosts=hosts,
        days=args.days,
        key_type=args.key_type,
        force=args.force,
    )
    print(
        f"{role.value} certificate for {args.name}: {files.cert} "
        f"(key {files.key}, mode 0600), valid until {_until(files)}"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console

    return show_certificates(args.file, Console())


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``certs init|member|client|show`` to the ``litemirror`` parser."""
    certs = sub.add_parser("certs", help="certificates for mutual TLS").add_subparsers(
        dest="certscmd", required=True
    )

    def common(s: argparse.ArgumentParser, days: int) -> None:
        s.add_argument("--dir", required=True, help="the certificate directory (holds the CA)")
        s.add_argument(
            "--key-type", choices=("ec", "rsa"), default="ec", help="EC P-256 or RSA 3072"
        )
        s.add_argument("--days", type=int, default=days, help=f"validity (default {days})")
        s.add_argument("--force", action="store_true", help="replace existing files")

    s = certs.add_parser("init", help="create the certificate authority of the mirror")
    common(s, CA_DAYS)
    s.add_argument("--name", default="litemirror CA", help="the CA's common name")
    s.set_defaults(func=cmd_init)

    s = certs.add_parser("member", help="issue a member (or arbiter) certificate")
    s.add_argument("name", help="the member name, as in the mirror config")
    s.add_argument(
        "--host",
        action="extend",
        nargs="+",
        required=True,
        metavar="HOST",
        help="DNS names and IP addresses it is reached at (repeatable)",
    )
    common(s, LEAF_DAYS)
    s.set_defaults(func=cmd_issue, role="member")

    s = certs.add_parser("client", help="issue a client certificate")
    s.add_argument("name", help="the user name the certificate stands for")
    common(s, LEAF_DAYS)
    s.set_defaults(func=cmd_issue, role="client")

    s = certs.add_parser("show", help="print a certificate (or every one in a bundle)")
    s.add_argument("file")
    s.set_defaults(func=cmd_show)
