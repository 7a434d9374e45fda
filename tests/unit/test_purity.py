"""The pure cores do no I/O and read no clock: they import none of the modules that could.

Checked on the source with :mod:`ast` (nothing is imported or executed): every
``import`` in every module of each pure package -- including imports inside
functions and under ``TYPE_CHECKING`` -- and, transitively, in every litemirror
module they import; and every call of the builtin ``open()`` in those modules.
Third party libraries (msgspec, xxhash) are not followed: they are codecs, not I/O.

A pure module that needs a time, a path or a random number is handed it as a
value (or a callable) by its shell; one that names a type from a banned module
(``datetime``, ``ssl``) takes a plain value instead.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

import litemirror
from litemirror.testing.import_graph import import_statements

SRC = Path(litemirror.__file__).parent
BANNED = {
    "asyncio",
    "socket",
    "time",
    "threading",
    "subprocess",
    "selectors",
    "os",
    "pathlib",
    "io",
    "datetime",
    "random",
    "ssl",
    "signal",
}
#: A package stands for every module in it, present and future; modules are also
#: named on their own where a reader looks for them (a rename then fails here).
PURE = [
    "litemirror.journal.record",
    "litemirror.protocol",
    # Named on its own as well: the listeners' first check of every connection.
    "litemirror.protocol.handshake",
    "litemirror.security.throttle",
    "litemirror.security.admission",
    "litemirror.security.descriptors",
    "litemirror.security.roles",
    "litemirror.security.visibility",
    "litemirror.security.login_tokens",
    "litemirror.failover",
    "litemirror.failover.machine",
    "litemirror.failover.start",
    "litemirror.failover.readiness",
    "litemirror.failover.states",
    "litemirror.replication",
    "litemirror.replication.start",
    "litemirror.replication.stream",
    "litemirror.replication.commit",
    "litemirror.replication.purge",
    "litemirror.replication.archive",
    "litemirror.replication.accept",
    "litemirror.backup.manifest",
    "litemirror.backup.choose",
    "litemirror.backup.schedule",
    "litemirror.backup.plan",
    "litemirror.backup.sealed",
    "litemirror.backup.drill",
]


def module_file(name: str) -> Path | None:
    """Where litemirror module ``name`` lives, without importing it."""
    parts = name.split(".")
    if parts[0] != "litemirror":
        return None
    base = SRC.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_files(name: str) -> list[Path]:
    f = module_file(name)
    if f is None:
        return []
    return sorted(f.parent.rglob("*.py")) if f.name == "__init__.py" else [f]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in ``path`` (for ``from pkg
    import x``: ``pkg`` and ``pkg.x``, which may name a submodule)."""
    found: set[str] = set()
    for mod, names in import_statements(module_name(path), path):
        found.add(mod)
        found.update(f"{mod}.{n}" for n in names)
    return found


def opens(path: Path) -> list[int]:
    """Lines of ``path`` that call the builtin ``open()`` (a plain name, not a method)."""
    tree = ast.parse(path.read_text(), str(path))
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
    )


def banned_imports(package: str) -> list[str]:
    """Each banned import (or ``open()`` call) reachable from ``package``, as the chain
    that leads to it."""
    queue = deque((f, [module_name(f)]) for f in package_files(package))
    seen = {f for f, _ in queue}
    problems: list[str] = []
    while queue:
        path, chain = queue.popleft()
        problems.extend(f"{' -> '.join(chain)}: open() at line {n}" for n in opens(path))
        for name in sorted(imports(path)):
            if name.split(".")[0] in BANNED:
                problems.append(" -> ".join([*chain, name]))
            target = module_file(name)
            if target is not None and target not in seen:
                seen.add(target)
                queue.append((target, [*chain, module_name(target)]))
    return problems


@pytest.mark.parametrize("package", PURE)
def test_pure_core_imports_no_io(package: str) -> None:
    assert package_files(package), f"{package} is named as pure but does not exist"
    assert banned_imports(package) == []


def test_the_check_sees_imports() -> None:
    """The scanner resolves relative imports and does report banned ones where they exist."""
    sample = SRC / "failover" / "machine.py"
    found = imports(sample)
    assert "litemirror.failover.steps" in found and "litemirror.failover.events" in found
    assert banned_imports("litemirror.cli") != []  # the command line does use the clock


def test_the_check_sees_open_calls(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(p):\n    with open(p) as fh:\n        return fh.open()\n")
    assert opens(sample) == [2]
    assert opens(SRC / "durable.py") != []  # the durable writes do open files
