"""Which litemirror module imports which, read from the source (nothing is imported).

Every ``import`` counts: at the top, inside functions and under
``TYPE_CHECKING``, since each one is a dependency a reader has to follow.
``from pkg import name`` is an edge to the submodule ``pkg.name`` when there
is one, else to ``pkg`` itself. Third-party and standard modules are left out.

Used by the tests that keep the architecture honest (no import cycles, no
import of the command line from the server, the client or the test
harness) and by ``scripts/import_drawing.py``, which draws the packages'
dependencies into ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import litemirror

SRC = Path(litemirror.__file__).parent
ROOT = "litemirror"

#: Module name -> the litemirror modules it imports.
Graph = dict[str, set[str]]


def module_name(path: Path, src: Path = SRC) -> str:
    """``.../litemirror/server/ha/agent.py`` -> ``litemirror.server.ha.agent``."""
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package under ``src``, by name."""
    return {module_name(p, src): p for p in sorted(src.rglob("*.py"))}


def import_statements(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """Every import in module ``name`` (at ``path``), anywhere in it, resolved to absolute:
    ``(module, [])`` for ``import module``, ``(pkg, [x, ...])`` for ``from pkg import x, ...``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, [alias.name for alias in node.names]))
    return found


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The litemirror modules that module ``name`` (at ``path``) imports anywhere."""
    modules = set(known)
    found: set[str] = set()
    for mod, names in import_statements(name, path):
        if not names:
            found.add(mod)
            continue
        subs = [f"{mod}.{n}" for n in names]
        named = [sub for sub in subs if sub in modules]
        found.update(named)
        if len(named) < len(subs):  # some names are attributes of mod itself
            found.add(mod)
    return {_nearest(x, modules) for x in found if x.split(".")[0] == ROOT} - {name, ""}


def _nearest(name: str, modules: set[str]) -> str:
    """``name`` if it is a module, else its nearest enclosing one."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def build(src: Path = SRC) -> Graph:
    mods = all_modules(src)
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[tuple[str, ...]]:
    """Each group of modules that import each other in a circle (a strongly
    connected component of two or more), as a sorted tuple; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = 0
    # Tarjan's algorithm, iterative: the graph is deep enough to matter.
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                if len(group) > 1:
                    found.append(tuple(sorted(group)))
    return sorted(found)


def one_circle(graph: Mapping[str, set[str]], group: Iterable[str]) -> list[str]:
    """A shortest circle of imports through the group's first module, to show a reader."""
    members = set(group)
    start = min(members)
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & members):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return [start]


def describe_cycles(graph: Mapping[str, set[str]]) -> str:
    """Each cycle as its modules and one circle through them, for a failing test's message."""
    lines = []
    for group in cycles(graph):
        lines.append(f"{len(group)} modules import each other: {', '.join(group)}")
        lines.append("  e.g. " + " -> ".join(one_circle(graph, group)))
    return "\n".join(lines)


def unit(module: str) -> str:
    """The package a module belongs to in the drawing: a server subpackage or module
    (``server.ha``, ``server.role``), else a top-level package or module (``journal``,
    ``errors``)."""
    parts = module.split(".")[1:]
    if not parts:
        return ROOT
    if parts[0] == "server" and len(parts) > 1:
        return f"server.{parts[1]}"
    return parts[0]


def unit_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Which package imports which (a module's import of its own package is left out)."""
    out: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        edges = out.setdefault(unit(mod), set())
        edges.update(unit(t) for t in targets)
    for name, edges in out.items():
        edges.discard(name)
    return out


def drawing(graph: Mapping[str, set[str]]) -> str:
    """The packages' dependencies as plain text: one line per package, what it imports."""
    units = unit_graph(graph)
    width = max(len(u) for u in units)
    lines = []
    for name in sorted(units, key=lambda u: (u.startswith("server"), u)):
        targets = ", ".join(sorted(units[name])) or "(nothing of litemirror)"
        lines.append(f"{name:<{width}}  -> {targets}")
    return "\n".join(lines)


def cli_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """Imports of the command line from the server, the client or the test harness."""
    layers = tuple(f"{ROOT}.{p}" for p in ("server", "client", "testing"))
    return sorted(
        f"{mod} imports {target}"
        for mod, targets in graph.items()
        if mod.startswith(layers) and mod.split(".")[1] in {"server", "client", "testing"}
        for target in targets
        if target == f"{ROOT}.cli" or target.startswith(f"{ROOT}.cli.")
    )


BEGIN = "<!-- import-drawing:begin (generated by scripts/import_drawing.py; do not edit) -->"
END = "<!-- import-drawing:end -->"


def drawn_block(graph: Mapping[str, set[str]]) -> str:
    """The text that goes between the markers of ``docs/architecture.md``."""
    return f"{BEGIN}\n```\n{drawing(graph)}\n```\n{END}"


def current_block(doc: str) -> str | None:
    """The drawing block of ``doc`` as it stands (markers included); None without markers."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        return None
    return doc[start : end + len(END)]


def splice(doc: str, block: str) -> str:
    """``doc`` with its drawing block replaced by ``block`` (ValueError without markers)."""
    old = current_block(doc)
    if old is None:
        raise ValueError(f"the document has no {BEGIN!r} ... {END!r} markers")
    return doc.replace(old, block, 1)
