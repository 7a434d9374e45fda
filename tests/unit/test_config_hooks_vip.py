"""Config for become-primary hooks and the virtual IP: defaults, good values, bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from litemirror.config import HooksSection, build, load
from litemirror.errors import ConfigError

BASE = """
[mirror]
name = "demo"
[[members]]
name = "a"
address = "127.0.0.1:7701"
data_dir = "data/a"
[[members]]
name = "b"
address = "127.0.0.1:7702"
data_dir = "data/b"
[[members]]
name = "r"
address = "127.0.0.1:7703"
data_dir = "data/r"
kind = "reporting"
"""

WITH_ALL = """
[mirror]
name = "demo"
vip = "10.77.0.100/24"
[[members]]
name = "a"
address = "127.0.0.1:7701"
data_dir = "data/a"
vip_interface = "eth0"
[[members]]
name = "b"
address = "127.0.0.1:7702"
data_dir = "data/b"
vip_interface = "ens3"
[[members]]
name = "r"
address = "127.0.0.1:7703"
data_dir = "data/r"
kind = "reporting"
[hooks]
can_start_become_primary = "/usr/local/bin/can-start --site 'east 1'"
check_become_primary_ok = "python:mysite.hooks:check_ok"
notify_become_primary = "/usr/local/bin/page-oncall"
timeout_s = 2.5
"""


def _data(text: str = BASE) -> dict[str, Any]:
    d: dict[str, Any] = msgspec.toml.decode(text.encode())
    return d


def test_defaults_have_no_hooks_and_no_vip() -> None:
    cfg = build(_data(), environ={})
    assert cfg.hooks == HooksSection()
    assert cfg.hooks.timeout_s == 10.0
    assert cfg.hooks.can_start_become_primary is None
    assert cfg.mirror.vip is None
    assert all(m.vip_interface is None for m in cfg.members)


def test_hooks_and_vip_are_loaded_and_frozen(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text(WITH_ALL)
    cfg = load(p, environ={})
    assert cfg.mirror.vip == "10.77.0.100/24"
    assert cfg.member("a").vip_interface == "eth0"
    assert cfg.member("b").vip_interface == "ens3"
    assert cfg.member("r").vip_interface is None  # not a failover member: not needed
    assert cfg.hooks.can_start_become_primary == "/usr/local/bin/can-start --site 'east 1'"
    assert cfg.hooks.check_become_primary_ok == "python:mysite.hooks:check_ok"
    assert cfg.hooks.notify_become_primary_failed is None
    assert cfg.hooks.timeout_s == 2.5
    with pytest.raises(AttributeError):
        cfg.hooks.timeout_s = 1.0  # type: ignore[misc]


def test_vip_can_come_from_the_environment() -> None:
    d = _data()
    for m in d["members"][:2]:
        m["vip_interface"] = "eth0"
    cfg = build(d, environ={"LITEMIRROR_MIRROR_VIP": "192.168.5.9/24"})
    assert cfg.mirror.vip == "192.168.5.9/24"


@pytest.mark.parametrize(
    ("vip", "needle"),
    [
        ("10.77.0.100", "mirror.vip: '10.77.0.100' needs a prefix length"),
        ("10.77.0.300/24", "mirror.vip: '10.77.0.300/24' is not an IPv4 address"),
        ("not-an-ip/24", "mirror.vip: 'not-an-ip/24' is not an IPv4 address"),
        ("10.77.0.1/33", "mirror.vip: '10.77.0.1/33' is not an IPv4 address"),
        ("fd00::10/64", "mirror.vip: 'fd00::10/64' is not IPv4"),
        ("10.77.0.0/24", "mirror.vip: '10.77.0.0/24' is the network or broadcast"),
        ("10.77.0.255/24", "mirror.vip: '10.77.0.255/24' is the network or broadcast"),
    ],
)
def test_bad_vip_names_key_and_value(vip: str, needle: str) -> None:
    d = _data()
    d["mirror"]["vip"] = vip
    for m in d["members"]:
        m["vip_interface"] = "eth0"
    with pytest.raises(ConfigError) as ei:
        build(d, environ={})
    assert needle in ei.value.message


def test_vip_needs_an_interface_on_every_failover_member() -> None:
    d = _data()
    d["mirror"]["vip"] = "10.77.0.100/24"
    d["members"][0]["vip_interface"] = "eth0"
    with pytest.raises(ConfigError) as ei:
        build(d, environ={})
    assert ei.value.message.startswith("members[1].vip_interface: missing on failover member 'b'")
    assert "'10.77.0.100/24'" in ei.value.message


def test_vip_interface_without_vip_is_a_mistake() -> None:
    d = _data()
    d["members"][2]["vip_interface"] = "eth1"
    with pytest.raises(ConfigError, match=r"members\[2\].vip_interface: 'eth1' is set but"):
        build(d, environ={})


@pytest.mark.parametrize("name", ["", "eth0:1", "has space", "a/b", "x" * 16])
def test_bad_interface_names(name: str) -> None:
    d = _data()
    d["mirror"]["vip"] = "10.77.0.100/24"
    for m in d["members"]:
        m["vip_interface"] = "eth0"
    d["members"][1]["vip_interface"] = name
    with pytest.raises(ConfigError) as ei:
        build(d, environ={})
    assert ei.value.message.startswith(f"members[1].vip_interface: {name!r}")


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        (
            "can_start_become_primary",
            "python:mod",
            "must look like 'python:package.module:function'",
        ),
        ("check_become_primary_ok", "python:a..b:f", "'python:a..b:f' must look like"),
        ("check_become_primary_ok", "python:a.b:f-g", "'python:a.b:f-g' must look like"),
        ("notify_become_primary", "/bin/x 'unclosed", "is not a valid command line"),
        ("notify_become_primary_failed", "   ", "'   ' is empty"),
        ("timeout_s", 0, "hooks.timeout_s: 0"),
        ("timeout_s", -1.5, "hooks.timeout_s: -1.5"),
        ("timeout_s", "soon", "hooks.timeout_s"),
        ("unknown_point", "/bin/true", "unknown_point"),
    ],
)
def test_bad_hooks_name_key_and_value(key: str, value: object, needle: str) -> None:
    d = _data()
    d["hooks"] = {key: value}
    with pytest.raises(ConfigError) as ei:
        build(d, environ={})
    assert needle in ei.value.message
    if key != "unknown_point":
        assert ei.value.message.startswith(f"hooks.{key}")
