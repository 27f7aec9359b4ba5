"""docs/domains.md: its examples run, and its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

from nulabpass.audit._catalogue import ACTIONS
from nulabpass.domains import DomainPolicy, Outcome

PAGE = Path(__file__).resolve().parents[3] / "docs" / "domains.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_examples_run_in_order_as_written() -> None:
    examples = _examples()
    assert len(examples) == 3
    namespace: dict[str, object] = {}
    for index, code in enumerate(examples):
        exec(compile(code, f"docs/domains.md example {index + 1}", "exec"), namespace)  # noqa: S102


def test_the_page_states_the_default_record_and_periods() -> None:
    page = PAGE.read_text(encoding="utf-8")
    policy = DomainPolicy()
    assert f"`{policy.record_label}.<domain>`" in page
    assert f"`{policy.value_prefix}<token>`" in page
    assert f"({policy.grace_period.days} days by default)" in page
    assert f"expires after {policy.challenge_ttl.days} days" in page


def test_the_page_names_every_verdict_and_every_domain_audit_action() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for outcome in Outcome:
        assert f"| `{outcome.value}` |" in page
    for action in ACTIONS:
        if action.startswith("domain."):
            assert f"`{action}`" in page
