"""docs/mail.md: its examples run, and its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nulabpass.mail import DEFAULT_LINK_PATHS, TEMPLATE_PARAMS

PAGE = Path(__file__).resolve().parents[3] / "docs" / "mail.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_page_has_examples() -> None:
    """The page shows SMTP settings, rendering, overrides and the recording mailer."""
    assert len(_examples()) == 4


@pytest.mark.parametrize("index", range(len(_examples())))
def test_each_example_runs(index: int) -> None:
    """Every python block on the page runs as written, assertions included."""
    exec(compile(_examples()[index], f"docs/mail.md example {index + 1}", "exec"), {})  # noqa: S102


@pytest.mark.parametrize("name", sorted(TEMPLATE_PARAMS))
def test_the_parameter_table_lists_each_template(name: str) -> None:
    """The table row of each template names exactly its parameters."""
    page = PAGE.read_text(encoding="utf-8")
    rows = [
        line
        for line in page.splitlines()
        if line.startswith(f"| `{name}` | `") and "| `/" not in line
    ]
    assert len(rows) == 1
    listed = set(re.findall(r"`(\w+)`", rows[0].split("|")[2]))
    assert listed == TEMPLATE_PARAMS[name]


@pytest.mark.parametrize(("name", "path"), sorted(DEFAULT_LINK_PATHS.items()))
def test_the_link_path_table_matches(name: str, path: str) -> None:
    """The default link paths on the page are the ones in the code."""
    page = PAGE.read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if f"`{name}`" in line and "| `/" in line]
    assert any(f"`{path}" in row for row in rows)
