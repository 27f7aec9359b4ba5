"""Rewrite the generated blocks of the docs from the tables in the code.

Usage::

    python scripts/gen_docs.py          # rewrite the blocks in place
    python scripts/gen_docs.py --check  # exit 1 if a page is out of date

Each block sits between ``<!-- BEGIN GENERATED <name> -->`` and
``<!-- END GENERATED <name> -->``; the text between the markers is replaced by the
block's current text and everything else is left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from nulabpass.audit._catalogue import catalogue_markdown
from nulabpass.org._permissions import permission_table_markdown
from nulabpass.plans import doc_blocks

DOCS = Path(__file__).resolve().parent.parent / "docs"


def pages() -> dict[Path, Mapping[str, str]]:
    """Every generated page and its blocks."""
    return {
        DOCS / "plans.md": doc_blocks(),
        DOCS / "permissions.md": {"permissions": permission_table_markdown()},
        DOCS / "audit.md": {"catalogue": catalogue_markdown()},
    }


def _replacement(text: str) -> Callable[[re.Match[str]], str]:
    # A function, not a replacement string, so backslashes in the text stay literal.
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + text + match.group(2)

    return replace


def render(path: Path, page: str, blocks: Mapping[str, str]) -> str:
    """Return ``page`` with every generated block replaced by its current text."""
    for name, text in blocks.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED {re.escape(name)} -->\n).*?(<!-- END GENERATED "
            rf"{re.escape(name)} -->)",
            re.DOTALL,
        )
        if not pattern.search(page):
            raise SystemExit(f"{path}: no markers for the generated block {name!r}")
        page = pattern.sub(_replacement(text), page)
    return page


def main(argv: list[str] | None = None) -> int:
    """Rewrite or check the pages; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if a page is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path, blocks in pages().items():
        current = path.read_text(encoding="utf-8")
        updated = render(path, current, blocks)
        if updated == current:
            continue
        if args.check:
            print(f"{path} is out of date; run {Path(__file__).name}", file=sys.stderr)
            stale += 1
        else:
            path.write_text(updated, encoding="utf-8")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
