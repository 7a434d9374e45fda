"""Draw which litemirror package imports which into docs/architecture.md.

    python scripts/import_drawing.py          # rewrite the drawing between the markers
    python scripts/import_drawing.py --check  # exit 1 if the drawing is stale

The drawing is read from the source (litemirror.testing.import_graph), so it
shows what the code does, not what someone remembered to write down;
tests/unit/test_architecture_doc.py fails when the document differs from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from litemirror.testing import import_graph as ig

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is stale")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document (default: %(default)s)")
    args = parser.parse_args(argv)
    doc = args.doc.read_text()
    new = ig.splice(doc, ig.drawn_block(ig.build()))
    if new == doc:
        print(f"{args.doc}: the import drawing is up to date")
        return 0
    if args.check:
        print(f"{args.doc}: the import drawing is stale; run python scripts/import_drawing.py")
        return 1
    args.doc.write_text(new)
    print(f"{args.doc}: import drawing rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
