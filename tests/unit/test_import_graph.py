"""No import cycles among litemirror's modules; no import of the command line from below it.

Read from the source (:mod:`litemirror.testing.import_graph`): every import
counts, at the top, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from pathlib import Path

from litemirror.testing import import_graph as ig


def test_no_module_imports_itself_back() -> None:
    graph = ig.build()
    assert ig.cycles(graph) == [], "import cycles:\n" + ig.describe_cycles(graph)


def test_nothing_below_the_command_line_imports_it() -> None:
    assert ig.cli_imports(ig.build()) == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    src = root / "litemirror"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
            "b.py": "def f():\n    from litemirror.pkg import c, VALUE\n",
            "pkg/__init__.py": "VALUE = 1\n",
            "pkg/c.py": "import litemirror.a\nimport os\n",
            "server/__init__.py": "",
            "server/x.py": "from litemirror.cli.main import run\n",
            "cli/__init__.py": "",
            "cli/main.py": "import litemirror.server.x\n",
        },
    )
    graph = ig.build(src)
    assert graph["litemirror.a"] == {"litemirror.b"}  # TYPE_CHECKING, relative
    # Function-local; "c" is a submodule, "VALUE" an attribute of the package.
    assert graph["litemirror.b"] == {"litemirror.pkg.c", "litemirror.pkg"}
    assert graph["litemirror.pkg.c"] == {"litemirror.a"}  # os is not ours
    assert ig.cycles(graph) == [
        ("litemirror.a", "litemirror.b", "litemirror.pkg.c"),
        ("litemirror.cli.main", "litemirror.server.x"),
    ]
    assert ig.one_circle(graph, ig.cycles(graph)[0]) == [
        "litemirror.a",
        "litemirror.b",
        "litemirror.pkg.c",
        "litemirror.a",
    ]
    assert ig.cli_imports(graph) == ["litemirror.server.x imports litemirror.cli.main"]
    assert "3 modules import each other" in ig.describe_cycles(graph)


def test_a_tree_without_cycles_has_none(tmp_path: Path) -> None:
    src = write_tree(tmp_path, {"__init__.py": "", "a.py": "from . import b\n", "b.py": ""})
    assert ig.cycles(ig.build(src)) == []
