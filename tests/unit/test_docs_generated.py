"""Generated documentation matches the tables in the code it is generated from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["plans.md", "permissions.md", "audit.md"])
def test_generated_blocks_are_current(page: str) -> None:
    """Run `python scripts/gen_docs.py` when this fails."""
    gen = _gen_docs()
    path = ROOT / "docs" / page
    blocks = gen.pages()[path]
    current = path.read_text(encoding="utf-8")
    assert gen.render(path, current, blocks) == current


def test_a_stale_block_is_detected(tmp_path: Path) -> None:
    gen = _gen_docs()
    path = ROOT / "docs" / "permissions.md"
    stale = path.read_text(encoding="utf-8").replace("| yes |", "| no |", 1)
    assert gen.render(path, stale, gen.pages()[path]) != stale
