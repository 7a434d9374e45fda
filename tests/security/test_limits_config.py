"""The [limits] keys: validated at load, errors name the key; per-host caps never above overall."""

from __future__ import annotations

from typing import Any

import pytest

from litemirror.config import LimitsSection, build
from litemirror.errors import ConfigError
from litemirror.server.net.limits import caps_of


def config(**limits: Any) -> dict[str, Any]:
    return {
        "mirror": {"name": "demo", "databases": ["app"]},
        "members": [{"name": "a", "address": "127.0.0.1:7701", "data_dir": "/tmp/x/a"}],
        "limits": limits,
    }


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("max_anonymous", 0, "limits.max_anonymous: 0 must be a whole number of connections"),
        ("max_handshakes_per_host", -1, "limits.max_handshakes_per_host: -1"),
        ("http_max_connections", 10_000_000, "limits.http_max_connections: 10000000"),
        ("max_connections_per_user", 0, "limits.max_connections_per_user: 0"),
        ("anonymous_timeout_s", 0, "limits.anonymous_timeout_s: 0.0 must be a positive number"),
        ("http_timeout_s", float("inf"), "limits.http_timeout_s: inf must be a positive number"),
        ("handshake_timeout_s", -5, "limits.handshake_timeout_s: -5"),
        ("max_anonymous", "lots", "limits.max_anonymous"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build(config(**{key: value}), environ={})
    assert says in exc.value.message


def test_defaults_and_environment() -> None:
    cfg = build(config(), environ={"LITEMIRROR_LIMITS_MAX_ANONYMOUS": "16"})
    assert cfg.limits.max_anonymous == 16
    assert cfg.limits.handshake_timeout_s == 5.0 and cfg.limits.http_timeout_s == 10.0


def test_a_per_host_cap_above_its_overall_cap_acts_as_the_overall_cap() -> None:
    caps = caps_of(LimitsSection(max_connections=100, max_anonymous=4))
    assert caps.max_connections_per_host == 100 and caps.max_connections_per_user == 100
    assert caps.max_anonymous_per_host == 4
    assert caps.http_max_connections_per_host == 32  # untouched where it fits
