"""[tls] config and member authorisation by certificate subject, over real TLS handshakes."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from litemirror.config import Config, build
from litemirror.errors import ConfigError
from litemirror.security import certs as sc
from litemirror.security.certs import Role
from litemirror.security.tls import member_authorisation, normalise_subject, setup


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    sc.create_ca(d)
    for name in ("a", "b", "arbiter"):
        sc.issue(d, name, Role.MEMBER, hosts=["127.0.0.1"])
    sc.issue(d, "alice", Role.CLIENT)
    return d


def config(pki: Path, **members_extra: dict[str, Any]) -> Config:
    members = []
    for i, name in enumerate(("a", "b")):
        members.append(
            {
                "name": name,
                "address": f"127.0.0.1:{7701 + i}",
                "data_dir": f"/tmp/x/{name}",
                **members_extra.get(name, {}),
            }
        )
    return build(
        {
            "mirror": {"name": "m"},
            "members": members,
            "tls": {
                "ca": str(pki / "ca.crt"),
                "cert": str(pki / "members" / "{name}.crt"),
                "key": str(pki / "members" / "{name}.key"),
            },
        }
    )


def authorise(cfg: Config, pki: Path, presented: str, role: Role, claimed: str) -> str | None:
    """Handshake with ``presented``'s certificate; may it act as member ``claimed``?"""
    server = setup(cfg, "a")
    assert server is not None
    files = sc.leaf_files(pki, presented, role)
    client = sc.load_context(pki / "ca.crt", files.cert, files.key, server=False)
    left, right = socket.socketpair()
    result: list[str | None] = []

    def serve() -> None:
        with server.server.wrap_socket(left, server_side=True) as s:
            s.recv(1)
            result.append(member_authorisation(s, claimed, cfg))
            s.sendall(b"k")

    t = threading.Thread(target=serve)
    t.start()
    with client.wrap_socket(right, server_hostname="127.0.0.1") as c:
        c.sendall(b"x")
        c.recv(1)
    t.join(10)
    return result[0]


def test_default_rule_is_cn_and_ou_member(pki: Path) -> None:
    cfg = config(pki)
    assert authorise(cfg, pki, "b", Role.MEMBER, "b") is None
    why = authorise(cfg, pki, "b", Role.MEMBER, "a")
    assert why is not None and "for member b" in why
    why = authorise(cfg, pki, "alice", Role.CLIENT, "alice")
    assert why is not None and "not a member certificate" in why


def test_configured_subject_is_compared_attribute_by_attribute(pki: Path) -> None:
    # b may only be the holder of arbiter's certificate subject (order and case of
    # attribute names do not matter).
    cfg = config(pki, b={"tls_subject": "ou=member, CN=arbiter, O=litemirror"})
    assert authorise(cfg, pki, "arbiter", Role.MEMBER, "b") is None
    why = authorise(cfg, pki, "b", Role.MEMBER, "b")
    assert why is not None and "not the one authorised for member b" in why


def test_without_tls_every_peer_may() -> None:
    cfg = build(
        {
            "mirror": {"name": "m"},
            "members": [{"name": "a", "address": "127.0.0.1:1", "data_dir": "/tmp/x/a"}],
        }
    )
    assert member_authorisation(None, "a", cfg) is None


def test_plaintext_member_is_refused_when_tls_is_configured(pki: Path) -> None:
    why = member_authorisation(None, "b", config(pki))
    assert why is not None and "without TLS" in why


def test_normalise_subject() -> None:
    assert normalise_subject("CN=a,OU=member") == normalise_subject(" ou=member , cn=a")
    assert normalise_subject("CN=a\\,b,OU=x") == (("CN", "a\\,b"), ("OU", "x"))


@pytest.mark.parametrize(
    ("tls", "match"),
    [
        ({"require": True}, "tls.require: true needs tls.ca"),
        ({"ca": "ca.crt", "cert": "x.crt"}, "tls.key missing"),
        ({"ca": "ca.crt", "cert": "c", "key": "k", "arbiter_name": "bad name"}, "arbiter_name"),
    ],
)
def test_bad_tls_sections(tls: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build(
            {
                "mirror": {"name": "m"},
                "members": [{"name": "a", "address": "127.0.0.1:1", "data_dir": "/tmp/x/a"}],
                "tls": tls,
            }
        )


def test_bad_subject_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tls_subject"):
        build(
            {
                "mirror": {"name": "m"},
                "members": [
                    {
                        "name": "a",
                        "address": "127.0.0.1:1",
                        "data_dir": "/tmp/x/a",
                        "tls_subject": "just a name",
                    }
                ],
            }
        )


def test_paths_are_relative_to_the_config_and_templates_take_the_name(tmp_path: Path) -> None:
    cfg = build(
        {
            "mirror": {"name": "m"},
            "members": [
                {"name": "a", "address": "127.0.0.1:1", "data_dir": "d/a"},
                {
                    "name": "b",
                    "address": "127.0.0.1:2",
                    "data_dir": "d/b",
                    "tls_cert": "b.pem",
                    "tls_key": "b.key",
                },
            ],
            "tls": {"ca": "ca.crt", "cert": "m/{name}.crt", "key": "m/{name}.key"},
        },
        path=tmp_path / "mirror.toml",
    )
    assert cfg.tls is not None
    assert cfg.tls.ca == tmp_path / "ca.crt"
    assert cfg.tls.files_for("a", cfg.member("a")) == (
        tmp_path / "m" / "a.crt",
        tmp_path / "m" / "a.key",
    )
    assert cfg.tls.files_for("b", cfg.member("b")) == (tmp_path / "b.pem", tmp_path / "b.key")
    assert cfg.tls.files_for("arbiter") == (
        tmp_path / "m" / "arbiter.crt",
        tmp_path / "m" / "arbiter.key",
    )


def test_missing_certificate_file_is_a_clear_error(pki: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        setup(config(pki), "nobody")
