"""[statements], server.read_threads and server.shutdown_timeout_s: defaults, overrides, errors."""

from __future__ import annotations

from typing import Any

import pytest

from litemirror.config import Config, build
from litemirror.errors import ConfigError


def config(environ: dict[str, str] | None = None, **sections: Any) -> Config:
    data = {
        "mirror": {"name": "m", "databases": ["app"]},
        "members": [{"name": "a", "address": "127.0.0.1:7701", "data_dir": "/tmp/lm-a"}],
        **sections,
    }
    return build(data, environ=environ or {})


def test_defaults_a_demanding_operator_would_choose() -> None:
    c = config()
    assert c.statements.timeout_s == 30.0
    assert c.statements.slow_s == 5.0
    assert c.statements.read_request_max_bytes == 1024 * 1024
    assert c.server.read_threads == 8
    assert c.server.shutdown_timeout_s == 10.0


@pytest.mark.parametrize(
    ("user", "role", "limit"),
    [
        ("alice", "read", 5.0),  # her own limit
        ("bob", "read", 10.0),  # the read role's
        ("bob", "admin", 0.0),  # the admin role's: none
        ("carol", "write", 30.0),  # the default
        (None, None, 30.0),  # nobody logged in (auth off)
    ],
)
def test_a_users_limit_overrides_the_roles_which_overrides_the_default(
    user: str | None, role: str | None, limit: float
) -> None:
    c = config(
        statements={
            "timeout_s": 30,
            "role_timeout_s": {"read": 10, "admin": 0},
            "user_timeout_s": {"alice": 5},
        }
    )
    assert c.statements.timeout_for(user, role) == limit


def test_environment_overrides_a_scalar_key() -> None:
    c = config(environ={"LITEMIRROR_STATEMENTS_TIMEOUT_S": "7.5"})
    assert c.statements.timeout_s == 7.5


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"statements": {"timeout_s": -1}}, "statements.timeout_s"),
        ({"statements": {"timeout_s": float("nan")}}, "statements.timeout_s"),
        ({"statements": {"slow_s": -0.1}}, "statements.slow_s"),
        ({"statements": {"role_timeout_s": {"reader": 5}}}, "statements.role_timeout_s.reader"),
        ({"statements": {"role_timeout_s": {"read": -5}}}, "statements.role_timeout_s.read"),
        ({"statements": {"user_timeout_s": {"bad name": 5}}}, "statements.user_timeout_s"),
        (
            {"statements": {"user_timeout_s": {"bob": float("inf")}}},
            "statements.user_timeout_s.bob",
        ),
        ({"statements": {"read_request_max_bytes": 10}}, "statements.read_request_max_bytes"),
        (
            {"statements": {"read_request_max_bytes": 4096}, "limits": {"max_frame_bytes": 2048}},
            "limits.max_frame_bytes",
        ),
        ({"statements": {"timeout": 5}}, "statements"),
        ({"server": {"read_threads": 0}}, "server.read_threads"),
        ({"server": {"shutdown_timeout_s": 0}}, "server.shutdown_timeout_s"),
    ],
)
def test_bad_values_are_refused_naming_the_key(sections: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(**sections)
    assert named in err.value.message, err.value.message
