"""docs/plans.md shows exactly what the tables generate, and the generators cover the tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nulabpass.plans import (
    ENTITLEMENTS,
    TIME_TRANSITIONS,
    TRANSITIONS,
    Capability,
    PlanState,
    doc_blocks,
    entitlements_markdown,
    mermaid_diagram,
    transitions_markdown,
)

PAGE = Path(__file__).resolve().parents[3] / "docs" / "plans.md"


def _block(page: str, name: str) -> str:
    found = re.findall(
        rf"<!-- BEGIN GENERATED {re.escape(name)} -->\n(.*?)<!-- END GENERATED "
        rf"{re.escape(name)} -->",
        page,
        re.DOTALL,
    )
    assert len(found) == 1, f"docs/plans.md must hold the block {name!r} exactly once"
    return str(found[0])


@pytest.mark.parametrize("name", sorted(doc_blocks()))
def test_the_docs_page_holds_the_current_generated_block(name: str) -> None:
    """Run scripts/gen_docs.py when this fails: the page drifted from the table."""
    page = PAGE.read_text(encoding="utf-8")
    assert _block(page, name) == doc_blocks()[name]


def test_the_diagram_block_is_the_mermaid_diagram() -> None:
    """The page embeds mermaid_diagram() itself, inside a mermaid fence."""
    page = PAGE.read_text(encoding="utf-8")
    assert f"```mermaid\n{mermaid_diagram()}```" in page


def test_the_diagram_draws_one_edge_per_outcome_and_time_edge() -> None:
    """Every outcome of the table and every time edge is an arrow, and nothing else is."""
    lines = mermaid_diagram().splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert lines[1] == "    [*] --> none"
    arrows = [line.strip() for line in lines[2:]]
    expected = [
        f"{source} --> {outcome.target}: {kind}"
        for (source, kind), cell in TRANSITIONS.items()
        for outcome in cell
    ] + [
        f"{source} --> {edge.target}: time reaches {edge.when}"
        for source, edges in TIME_TRANSITIONS.items()
        for edge in edges
    ]
    assert len(arrows) == len(expected)
    for arrow, prefix in zip(arrows, expected, strict=True):
        assert arrow.startswith(prefix)
        # Mermaid ends a transition label at a colon; labels must not contain another.
        assert arrow.count(":") == 1


def test_guarded_edges_show_their_condition() -> None:
    """A cell with several outcomes labels each branch, the last one as else."""
    diagram = mermaid_diagram()
    assert "trialing --> ended: cancel [policy ends canceled trials at once]" in diagram
    assert "trialing --> canceling: cancel [else]" in diagram
    assert "canceling --> trialing: resume [no paid plan bought]" in diagram


def test_the_transition_table_has_a_row_per_outcome() -> None:
    """Rows are outcomes plus time edges, each naming its states."""
    rows = transitions_markdown().splitlines()[2:]
    outcomes = sum(len(cell) for cell in TRANSITIONS.values())
    time_edges = sum(len(edges) for edges in TIME_TRANSITIONS.values())
    assert len(rows) == outcomes + time_edges
    assert "| `trial_expired` | `upgrade` | always | `active` |" in transitions_markdown()


def test_the_entitlement_table_shows_every_cell() -> None:
    """One row per capability, one column per state in declaration order."""
    lines = entitlements_markdown().splitlines()
    assert lines[0].split(" | ")[1:8] == [f"`{state}`" for state in PlanState]
    rows = lines[2:]
    assert len(rows) == len(Capability)
    for capability, row in zip(Capability, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:8] == [
            "yes" if ENTITLEMENTS[capability][state] else "no" for state in PlanState
        ]


def test_the_python_examples_in_the_page_run() -> None:
    """Every python block of docs/plans.md executes without error."""
    page = PAGE.read_text(encoding="utf-8")
    examples = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    assert examples
    for example in examples:
        exec(compile(example, str(PAGE), "exec"), {})  # noqa: S102 - our own docs
