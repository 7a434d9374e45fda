"""Shared fixtures: real member processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


#: The browser the Mirror Monitor tests drive (scripts/install-browser.sh installs it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``chromium(**context_options)``: a page in a real headless Chromium, fresh profile each."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh (needs apt-get)")
    with sync_playwright() as pw:
        contexts: list[Any] = []

        def open_page(**options: Any) -> Any:
            # A persistent context is how playwright takes a fresh --user-data-dir.
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / f"chromium-profile-{len(contexts)}"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1366, "height": 900},
                **options,
            )
            contexts.append(ctx)
            return ctx.new_page()

        try:
            yield open_page
        finally:
            for ctx in contexts:
                ctx.close()


@pytest.fixture
def browser_page(chromium: Callable[..., Any]) -> Any:
    return chromium()
