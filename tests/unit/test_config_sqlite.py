"""The [sqlite] section: foreign keys per database, validated with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from litemirror.config import load
from litemirror.errors import ConfigError

BASE = """
[mirror]
name = "demo"
databases = ["app", "legacy"]
[[members]]
name = "a"
address = "127.0.0.1:7701"
data_dir = "data/a"
"""


def config(tmp_path: Path, extra: str, environ: dict[str, str] | None = None) -> object:
    p = tmp_path / "m.toml"
    p.write_text(BASE + extra)
    return load(p, environ=environ or {})


def test_default_is_sqlites_default(tmp_path: Path) -> None:
    cfg = config(tmp_path, "")
    assert cfg.sqlite.foreign_keys is False  # type: ignore[attr-defined]
    assert cfg.sqlite.foreign_keys_for("app") is False  # type: ignore[attr-defined]


def test_mirror_wide_setting_and_a_per_database_override(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "[sqlite]\nforeign_keys = true\n[sqlite.databases.legacy]\nforeign_keys = false\n"
        "[sqlite.databases.added-later]\n",
    )
    q = cfg.sqlite  # type: ignore[attr-defined]
    assert q.foreign_keys_for("app") is True
    assert q.foreign_keys_for("legacy") is False
    assert q.foreign_keys_for("added-later") is True  # nothing set: the mirror's value
    assert q.foreign_keys_for("_system") is True


def test_environment_sets_the_mirror_wide_value(tmp_path: Path) -> None:
    cfg = config(tmp_path, "", environ={"LITEMIRROR_SQLITE_FOREIGN_KEYS": "true"})
    assert cfg.sqlite.foreign_keys_for("app") is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[sqlite]\nforeign_keys = "yes"\n', "sqlite.foreign_keys: Expected `bool`"),
        ("[sqlite]\nforeign_key = true\n", "unknown field `foreign_key`"),
        (
            "[sqlite.databases.app]\nforeign_keys = 1\n",
            "sqlite.databases.app.foreign_keys: Expected `bool | null`",
        ),
        (
            '[sqlite.databases."bad name"]\nforeign_keys = true\n',
            "sqlite.databases.bad name: 'bad name' is not a database name",
        ),
        ('[sqlite.databases."app\\n"]\n', "is not a database name"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, extra)
    assert message in info.value.message
