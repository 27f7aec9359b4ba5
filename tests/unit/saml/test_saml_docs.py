"""The troubleshooting page documents every error code the SAML core can raise."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_every_saml_error_code_has_a_troubleshooting_entry() -> None:
    source = "".join(p.read_text() for p in (ROOT / "src/nulabpass/saml").glob("*.py"))
    raised = set(re.findall(r'"(saml\.[a-z_]+)"', source)) - {"saml.invalid"}
    page = (ROOT / "docs/saml-troubleshooting.md").read_text()
    documented = set(re.findall(r"^\| `(saml\.[a-z_]+)` \|", page, flags=re.MULTILINE))
    assert raised == documented
