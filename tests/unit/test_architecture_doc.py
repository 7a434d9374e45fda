"""docs/architecture.md shows which package imports which as the code does now."""

from __future__ import annotations

from pathlib import Path

from litemirror.testing import import_graph as ig

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_import_drawing_is_up_to_date() -> None:
    doc = DOC.read_text()
    assert ig.current_block(doc) is not None, f"{DOC} lost its import-drawing markers"
    assert ig.current_block(doc) == ig.drawn_block(ig.build()), (
        "docs/architecture.md: the drawing of which package imports which is stale; "
        "run: .venv/bin/python scripts/import_drawing.py"
    )


def test_splice_replaces_only_the_block() -> None:
    doc = f"intro\n{ig.BEGIN}\nold\n{ig.END}\noutro\n"
    assert ig.splice(doc, "NEW") == "intro\nNEW\noutro\n"
    assert ig.current_block("no markers") is None
