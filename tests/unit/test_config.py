"""Config: validated at load, errors name the key and the bad value, then frozen."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from litemirror.config import build, load
from litemirror.errors import ConfigError

BASE = """
[mirror]
name = "demo"
databases = ["app", "billing"]
[[members]]
name = "a"
address = "127.0.0.1:7701"
data_dir = "data/a"
[[members]]
name = "b"
address = "127.0.0.1:7702"
data_dir = "data/b"
kind = "failover"
[[members]]
name = "r"
address = "127.0.0.1:7703"
data_dir = "data/r"
kind = "reporting"
"""


def test_good_config_is_frozen_and_resolved(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text(BASE)
    cfg = load(p, environ={})
    assert cfg.mirror.name == "demo"
    assert [m.name for m in cfg.failover_members] == ["a", "b"]
    assert cfg.member("a").data_dir == (tmp_path / "data/a").resolve()
    assert cfg.member("r").port == 7703
    with pytest.raises(AttributeError):
        cfg.mirror.name = "other"  # type: ignore[misc]


def test_environment_overrides(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text(BASE)
    cfg = load(p, environ={"LITEMIRROR_SERVER_THREADS": "3", "LITEMIRROR_MIRROR_ACK": "applied"})
    assert cfg.server.threads == 3
    assert cfg.mirror.ack == "applied"


def _data(**changes: object) -> dict[str, object]:
    d: dict[str, object] = msgspec.toml.decode(BASE.encode())
    for dotted, value in changes.items():
        sec, _, key = dotted.partition("__")
        if key.isdigit():
            continue
        section = d.setdefault(sec, {})
        assert isinstance(section, dict)
        section[key] = value
    return d


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"mirror__name": "x" * 16}, "mirror.name: 'xxxxxxxxxxxxxxxx'"),
        ({"mirror__databases": ["ok", "bad name"]}, "mirror.databases: 'bad name'"),
        ({"mirror__databases": ["a", "a"]}, "listed twice"),
        ({"mirror__ack": "eventually"}, "mirror.ack"),
        ({"mirror__qos_timeout_ms": 50}, "mirror.qos_timeout_ms: 50"),
        ({"mirror__heartbeat_ms": 1500}, "mirror.heartbeat_ms: 1500"),
        ({"mirror__arbiter": "nohost"}, "mirror.arbiter: 'nohost' is not HOST:PORT"),
        ({"server__threads": 0}, "server.threads: 0"),
        ({"server__threads": "two"}, "server.threads"),
        ({"journal__segment_bytes": 10}, "journal.segment_bytes: 10"),
        ({"limits__max_frame_bytes": 5}, "limits.max_frame_bytes: 5"),
        ({"server__unknown_key": 1}, "unknown_key"),
    ],
)
def test_bad_values_name_key_and_value(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        build(_data(**changes), environ={})
    assert needle in ei.value.message


def test_member_rules() -> None:
    d = _data()
    members = d["members"]
    assert isinstance(members, list)
    members[1]["name"] = "a"
    with pytest.raises(ConfigError, match=r"members\[1\].name: duplicate member name 'a'"):
        build(d, environ={})
    d = _data()
    d["members"][2]["kind"] = "failover"  # type: ignore[index]
    with pytest.raises(ConfigError, match="at most two"):
        build(d, environ={})
    d = _data()
    d["members"][1]["address"] = "127.0.0.1:7701"  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"members\[1\].address"):
        build(d, environ={})
    d = _data()
    d["members"] = []
    with pytest.raises(ConfigError, match="at least one"):
        build(d, environ={})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "missing.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[mirror\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(p)


def test_archive_is_off_unless_a_dir_is_given(tmp_path: Path) -> None:
    assert build(_data(), path=tmp_path / "m.toml", environ={}).archive is None
    cfg = build(
        _data(archive__dir="arch", archive__keep_days=7, archive__max_bytes=10**9),
        path=tmp_path / "m.toml",
        environ={},
    )
    assert cfg.archive is not None
    assert cfg.archive.dir == (tmp_path / "arch").resolve()
    assert (cfg.archive.keep_days, cfg.archive.max_bytes) == (7, 10**9)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"archive__keep_days": 3}, "archive.keep_days: set to 3 but archive.dir is not"),
        ({"archive__max_bytes": 5}, "archive.max_bytes: set to 5 but archive.dir is not"),
        ({"archive__dir": " "}, "archive.dir: '' names no directory"),
        ({"archive__dir": "a", "archive__keep_days": -1}, "archive.keep_days: -1"),
        ({"archive__dir": "a", "archive__keep_days": float("nan")}, "archive.keep_days: nan"),
        ({"archive__dir": "a", "archive__max_bytes": -1}, "archive.max_bytes: -1"),
        ({"archive__dir": "a", "archive__max_bytes": "1G"}, "archive.max_bytes"),
        ({"archive__dir": "data/a/arch"}, "overlaps the data_dir of member 'a'"),
        ({"archive__dir": "data"}, "overlaps the data_dir of member 'a'"),
        ({"archive__where": "x"}, "where"),
    ],
)
def test_bad_archive_section_is_refused(
    tmp_path: Path, changes: dict[str, object], needle: str
) -> None:
    with pytest.raises(ConfigError) as e:
        build(_data(**changes), path=tmp_path / "m.toml", environ={})
    assert needle in e.value.message


def _key_file(path: Path, mode: int = 0o600, text: str = "ab" * 32) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_key_files_are_resolved_and_checked_at_load(tmp_path: Path) -> None:
    _key_file(tmp_path / "k")
    cfg = build(
        _data(archive__dir="arch", archive__encrypt_key_file="k", backup__encrypt_key_file="k"),
        path=tmp_path / "m.toml",
        environ={},
    )
    assert cfg.archive is not None
    assert cfg.archive.encrypt_key_file == (tmp_path / "k").resolve()
    assert cfg.backup.encrypt_key_file == str((tmp_path / "k").resolve())


@pytest.mark.parametrize(
    ("mode", "text", "needle"),
    [
        (None, "", "backup.encrypt_key_file: '.*k' does not exist"),
        (0o644, "ab" * 32, "can be read or written by other users .*chmod 600"),
        (0o640, "ab" * 32, "can be read or written by other users"),
        (0o600, "ab" * 31, "does not hold a key: it must hold 64 hex digits"),
        (0o600, "zz" * 32, "does not hold a key"),
    ],
)
def test_unfit_key_file_is_refused(
    tmp_path: Path, mode: int | None, text: str, needle: str
) -> None:
    if mode is not None:
        _key_file(tmp_path / "k", mode, text)
    with pytest.raises(ConfigError, match=needle):
        build(_data(backup__encrypt_key_file="k"), path=tmp_path / "m.toml", environ={})
    with pytest.raises(ConfigError, match=needle.replace("backup.", "archive.")):
        build(
            _data(archive__dir="a", archive__encrypt_key_file="k"),
            path=tmp_path / "m.toml",
            environ={},
        )


def test_archive_key_without_archive_dir_is_refused(tmp_path: Path) -> None:
    _key_file(tmp_path / "k")
    with pytest.raises(ConfigError, match=r"archive.encrypt_key_file: set to 'k' but archive.dir"):
        build(_data(archive__encrypt_key_file="k"), path=tmp_path / "m.toml", environ={})
