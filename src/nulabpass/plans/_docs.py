"""Documentation drawn from the tables, so that the docs cannot drift from the code."""

from __future__ import annotations

from nulabpass.plans._entitlements import (
    CAPABILITY_LABELS,
    ENTITLEMENTS,
    SEAT_LIMITED,
    Capability,
)
from nulabpass.plans._model import PlanState
from nulabpass.plans._table import GUARD_LABELS, TIME_TRANSITIONS, TRANSITIONS, Outcome

__all__ = ["doc_blocks", "entitlements_markdown", "mermaid_diagram", "transitions_markdown"]


def _guard_text(outcome: Outcome, cell: tuple[Outcome, ...]) -> str:
    if outcome.guard is not None:
        return GUARD_LABELS[outcome.guard]
    # An unguarded outcome after guarded ones is UML's "else" branch.
    return "else" if len(cell) > 1 else ""


def mermaid_diagram() -> str:
    """Return a Mermaid ``stateDiagram-v2`` of the transition table and the time edges.

    Event edges are labelled ``event`` or ``event [guard]``; edges that time alone takes
    are labelled ``time reaches <field>``. The text ends with a newline.
    """
    lines = ["stateDiagram-v2", f"    [*] --> {PlanState.NONE}"]
    for (source, kind), cell in TRANSITIONS.items():
        for outcome in cell:
            guard = _guard_text(outcome, cell)
            label = f"{kind} [{guard}]" if guard else str(kind)
            lines.append(f"    {source} --> {outcome.target}: {label}")
    for source, edges in TIME_TRANSITIONS.items():
        for edge in edges:
            lines.append(f"    {source} --> {edge.target}: time reaches {edge.when}")
    return "\n".join(lines) + "\n"


def _effects_text(outcome: Outcome) -> str:
    return ", ".join(f"`{effect}`" for effect in outcome.effects) or "none"


def transitions_markdown() -> str:
    """Return the transition table as a Markdown table, one row per outcome.

    Pairs that do not appear are invalid and raise ``InvalidPlanTransition``. Rows for
    time edges follow, with ``(time)`` as the event.
    """
    lines = [
        "| state | event | condition | new state | effects |",
        "|---|---|---|---|---|",
    ]
    for (source, kind), cell in TRANSITIONS.items():
        for outcome in cell:
            guard = _guard_text(outcome, cell) or "always"
            lines.append(
                f"| `{source}` | `{kind}` | {guard} | `{outcome.target}` | "
                f"{_effects_text(outcome)} |"
            )
    for source, edges in TIME_TRANSITIONS.items():
        for edge in edges:
            lines.append(
                f"| `{source}` | (time) | `{edge.when}` passes | `{edge.target}` | "
                "see due effects |"
            )
    return "\n".join(lines) + "\n"


def entitlements_markdown() -> str:
    """Return the entitlement table as a Markdown table, one row per capability.

    The last column says whether the capability is withdrawn while the organization has
    more managed accounts than seats.
    """
    states = list(PlanState)
    header = "| check | " + " | ".join(f"`{s}`" for s in states) + " | over seats |"
    rule = "|---|" + "---|" * (len(states) + 1)
    lines = [header, rule]
    for capability in Capability:
        cells = ["yes" if ENTITLEMENTS[capability][s] else "no" for s in states]
        over = "no" if capability in SEAT_LIMITED else "unchanged"
        lines.append(
            f"| {CAPABILITY_LABELS[capability]} (`{capability}`) | "
            + " | ".join(cells)
            + f" | {over} |"
        )
    return "\n".join(lines) + "\n"


def doc_blocks() -> dict[str, str]:
    """Return the generated blocks of ``docs/plans.md``, keyed by block name.

    Each block sits in the page between ``<!-- BEGIN GENERATED <name> -->`` and
    ``<!-- END GENERATED <name> -->``, surrounded by one blank line each side (included
    in the returned text); ``scripts/gen_docs.py`` rewrites them and a unit test
    checks that the page holds exactly these texts.
    """
    blocks = {
        "plans:diagram": "```mermaid\n" + mermaid_diagram() + "```\n",
        "plans:transitions": transitions_markdown(),
        "plans:entitlements": entitlements_markdown(),
    }
    # Blank lines around each block keep Markdown from gluing it to the markers.
    return {name: f"\n{text}\n" for name, text in blocks.items()}
