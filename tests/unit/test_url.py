"""URL parsing: a table of good URLs and a table of bad ones with the part they must name."""

from __future__ import annotations

import dataclasses

import pytest

from litemirror.client.url import ConnectInfo, parse_address, parse_url
from litemirror.errors import InterfaceError

GOOD = [
    (
        "litemirror://h1/app",
        {"hosts": (("h1", 7701),), "database": "app", "read_only": False, "target": "primary"},
    ),
    (
        "litemirror://host1:7701,host2:7702/app?read_only=true&timeout=10&ack=durable"
        "&retry=2&target=any",
        {
            "hosts": (("host1", 7701), ("host2", 7702)),
            "read_only": True,
            "target": "any",
            "timeout": 10.0,
            "ack": "durable",
            "retry": 2,
        },
    ),
    ("litemirror://h/app?target=any", {"read_only": True, "target": "any"}),
    ("litemirror://h/app?read_only=1", {"read_only": True, "target": "primary"}),
    ("litemirror://h/app?read_only=false", {"read_only": False}),
    ("litemirror://h/app?connect_timeout=0.5", {"connect_timeout": 0.5, "timeout": 30.0}),
    ("litemirror://h/app", {"connect_timeout": 5.0, "timeout": 30.0, "ack": None, "retry": 0}),
    ("litemirror://h/app?ack=RECEIVED", {"ack": "received"}),
    ("litemirror://h/app?ack=applied", {"ack": "applied"}),
    ("LITEMIRROR://h/app", {"hosts": (("h", 7701),)}),
    ("litemirror://[::1]:7702/app", {"hosts": (("::1", 7702),)}),
    ("litemirror://[::1]/app", {"hosts": (("::1", 7701),)}),
    (
        "litemirror://[fe80::1]:1,10.0.0.2:2,name/app",
        {"hosts": (("fe80::1", 1), ("10.0.0.2", 2), ("name", 7701))},
    ),
    (
        "litemirror://alice:s%40cret@h1:7701,h2:7701/app",
        {"user": "alice", "password": "s@cret", "hosts": (("h1", 7701), ("h2", 7701))},
    ),
    ("litemirror://bob@h/app", {"user": "bob", "password": None}),
    ("litemirror://bob:@h/app", {"user": "bob", "password": ""}),
    ("litemirror://h/my%20db", {"database": "my db"}),
    ("litemirror://h/app?", {"database": "app"}),
    ("litemirror://h/app", {"redirect": True, "tls_ca": None}),
    ("litemirror://h/app?redirect=false", {"redirect": False}),
    (
        "litemirror://h/app?tls_ca=/etc/ca.crt&tls_cert=c.crt&tls_key=c.key",
        {"tls_ca": "/etc/ca.crt", "tls_cert": "c.crt", "tls_key": "c.key"},
    ),
]


@pytest.mark.parametrize(("url", "expected"), GOOD)
def test_good_urls(url: str, expected: dict[str, object]) -> None:
    info = parse_url(url)
    assert isinstance(info, ConnectInfo)
    for key, value in expected.items():
        assert getattr(info, key) == value, key


BAD = [
    ("postgres://h/app", "scheme"),
    ("h1:7701/app", "not a URL"),
    ("litemirror:///app", "no host"),
    ("litemirror://h1", "no database"),
    ("litemirror://h1/", "no database"),
    ("litemirror://h1/a/b", "must not contain '/'"),
    ("litemirror://h1:x/app", "'x'"),
    ("litemirror://h1:0/app", "'0'"),
    ("litemirror://h1:70000/app", "'70000'"),
    ("litemirror://h1:/app", "port ''"),
    ("litemirror://h1,,h2/app", "empty host"),
    ("litemirror://h1,/app", "empty host"),
    ("litemirror://::1:7701/app", "brackets"),
    ("litemirror://[::1/app", "']'"),
    ("litemirror://[::1]x/app", "after ']'"),
    ("litemirror://[]:1/app", "empty IPv6"),
    ("litemirror://:7701/app", "no host name"),
    ("litemirror://@h/app", "no user name"),
    ("litemirror://h/app?read_only=maybe", "read_only='maybe'"),
    ("litemirror://h/app?target=backup", "target='backup'"),
    ("litemirror://h/app?timeout=soon", "timeout='soon'"),
    ("litemirror://h/app?timeout=0", "timeout=0"),
    ("litemirror://h/app?timeout=-1", "timeout=-1"),
    ("litemirror://h/app?connect_timeout=nan", "connect_timeout=nan"),
    ("litemirror://h/app?ack=sometimes", "ack='sometimes'"),
    ("litemirror://h/app?retry=1.5", "retry='1.5'"),
    ("litemirror://h/app?retry=-1", "retry=-1"),
    ("litemirror://h/app?colour=red", "'colour'"),
    ("litemirror://h/app?retry=1&retry=2", "twice"),
    ("litemirror://h/app?retry", "malformed"),
    ("litemirror://h/app#frag", "fragment"),
    ("litemirror://h/app?redirect=perhaps", "redirect='perhaps'"),
    ("litemirror://h/app?tls_ca=", "tls_ca is empty"),
    ("litemirror://h/app?tls_ca=a&tls_cert=c", "tls_cert and tls_key"),
    ("litemirror://h/app?tls_cert=c&tls_key=k", "tls_cert needs tls_ca"),
]


@pytest.mark.parametrize(("url", "names"), BAD)
def test_bad_urls_name_the_bad_part(url: str, names: str) -> None:
    with pytest.raises(InterfaceError) as info:
        parse_url(url)
    assert names in str(info.value)


def test_non_string_url() -> None:
    with pytest.raises(InterfaceError, match="string"):
        parse_url(b"litemirror://h/app")  # type: ignore[arg-type]


def test_connect_info_is_frozen_and_replace_is_validated() -> None:
    info = parse_url("litemirror://h/app")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.database = "other"  # type: ignore[misc]
    assert dataclasses.replace(info, timeout=2).timeout == 2
    with pytest.raises(InterfaceError, match="ack="):
        dataclasses.replace(info, ack="never")
    assert dataclasses.replace(info, target="any").read_only is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("h:1", ("h", 1)),
        ("h", ("h", 7701)),
        ("[::1]:9", ("::1", 9)),
        (" 127.0.0.1:7702 ", ("127.0.0.1", 7702)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def test_describe_hosts_round_trips() -> None:
    info = parse_url("litemirror://[::1]:1,h:2/app")
    assert info.describe_hosts() == "[::1]:1,h:2"
    assert parse_url(f"litemirror://{info.describe_hosts()}/app").hosts == info.hosts
