"""Fault-trial tests: the proxy and checkers alone, then whole seeded trials."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Trials mount a tmpfs and bind 127.0.0.x addresses; both need root on Linux.
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="fault trials need root (tmpfs mounts)")
        for item in items:
            if "trial" in item.name:
                item.add_marker(skip)
