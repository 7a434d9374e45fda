"""Shared fixtures: real member processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litemirror.testing.cluster import Cluster


class SingleMember:
    """One member serving database "app"; what the driver tests talk to."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.proc = cluster["a"]

    def url(self, db: str = "app", **query: Any) -> str:
        return self.cluster.url(db, **query)

    def kill(self) -> None:
        self.proc.kill()

    def start(self) -> None:
        self.proc.start()

    def stop(self) -> None:
        self.proc.stop()

    @property
    def data_dir(self) -> Path:
        return self.proc.data_dir

    @property
    def config_path(self) -> Path:
        return self.cluster.config_path


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.kill_all()


@pytest.fixture
def member(cluster_factory: Any) -> Iterator[SingleMember]:
    c = cluster_factory()
    c.start()
    yield SingleMember(c)
    c.stop()
