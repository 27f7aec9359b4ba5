"""`nulabpass saml verify` and `nulabpass saml sp-metadata`: the exact CLI contract."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from nulabpass.cli import main
from nulabpass.saml.testing import TestIdentityProvider, TestKeyPair

from .conftest import ACS_URL, NOW, REQUEST_ID, SP_ENTITY_ID, Build

NOW_ARG = NOW.isoformat().replace("+00:00", "Z")


@pytest.fixture
def files(tmp_path: Path, idp: TestIdentityProvider, sp_keys: TestKeyPair) -> Path:
    (tmp_path / "idp.xml").write_bytes(idp.metadata())
    (tmp_path / "sp.key").write_bytes(sp_keys.key_pem)
    (tmp_path / "sp.crt").write_bytes(sp_keys.cert_pem)
    return tmp_path


def run(files: Path, xml: bytes, *extra: str) -> int:
    (files / "response.b64").write_text(base64.b64encode(xml).decode() + "\n")
    args = [
        "saml",
        "verify",
        str(files / "response.b64"),
        "--idp-metadata",
        str(files / "idp.xml"),
        "--sp-entity-id",
        SP_ENTITY_ID,
        "--acs-url",
        ACS_URL,
        "--now",
        NOW_ARG,
        *extra,
    ]
    return main(args)


def verify(
    capsys: pytest.CaptureFixture[str], files: Path, xml: bytes, *extra: str
) -> tuple[int, dict[str, object]]:
    code = run(files, xml, *extra)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1
    return code, json.loads(lines[0])


def test_an_accepted_response_prints_the_verified_fields_and_exits_0(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build
) -> None:
    xml = build(attributes={"groups": ["eng", "ops"]})
    code, result = verify(capsys, files, xml, "--request-id", REQUEST_ID)
    assert code == 0
    assert result["valid"] is True
    assert set(result) == {
        "valid",
        "issuer",
        "name_id",
        "name_id_format",
        "session_index",
        "assertion_id",
        "attributes",
    }
    assert result["name_id"] == "alice@example.com"
    assert result["issuer"] == "https://idp.example.test/saml/metadata"
    assert result["session_index"] == "_session1"
    assert result["assertion_id"] == etree.fromstring(xml)[2].get("ID")
    assert result["attributes"] == {"groups": ["eng", "ops"]}


def test_a_rejected_response_prints_the_code_and_message_and_exits_1(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build
) -> None:
    code, result = verify(
        capsys, files, build(audience="https://other.example"), "--request-id", REQUEST_ID
    )
    assert code == 1
    assert result["valid"] is False
    error = result["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message"}
    assert error["code"] == "saml.audience_mismatch"
    assert SP_ENTITY_ID in error["message"]


def test_without_request_id_a_response_is_unsolicited(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build
) -> None:
    unsolicited = build(in_response_to=None)
    code, result = verify(capsys, files, unsolicited)
    assert (code, result["error"]["code"]) == (1, "saml.unsolicited")  # type: ignore[index]
    assert verify(capsys, files, unsolicited, "--idp-initiated")[0] == 0
    code, result = verify(capsys, files, build(), "--idp-initiated")
    assert code == 1
    assert result["error"]["code"] == "saml.unexpected_in_response_to"  # type: ignore[index]


def test_now_fixes_the_clock(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build
) -> None:
    xml = build()
    later = ["--now", "2026-12-04T10:00:00+00:00"]
    code, result = verify(capsys, files, xml, "--request-id", REQUEST_ID, *later)
    assert code == 1
    assert result["error"]["code"] == "saml.expired"  # type: ignore[index]


def test_sp_key_decrypts_an_encrypted_assertion(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build, sp_keys: TestKeyPair
) -> None:
    xml = build(encrypt_for=sp_keys.cert_pem)
    code, result = verify(capsys, files, xml, "--request-id", REQUEST_ID)
    assert (code, result["error"]["code"]) == (1, "saml.decryption_failed")  # type: ignore[index]
    code, result = verify(
        capsys, files, xml, "--request-id", REQUEST_ID, "--sp-key", str(files / "sp.key")
    )
    assert (code, result["name_id"]) == (0, "alice@example.com")


@pytest.mark.parametrize(
    "change",
    [
        ["--now", "yesterday"],
        ["--now", "2026-12-04T09:00:00"],
        ["--idp-metadata", "/nonexistent/idp.xml"],
        ["--sp-key", "/nonexistent/sp.key"],
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build, change: list[str]
) -> None:
    code = run(files, build(), *change)
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_invalid_metadata_is_a_usage_error_naming_the_field(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build
) -> None:
    (files / "idp.xml").write_bytes(b"<md:EntityDescriptor xmlns:md='x'/>")
    code = run(files, build())
    assert code == 2
    assert "saml.metadata_invalid" in capsys.readouterr().err


def test_missing_required_arguments_exit_2_through_the_real_command(tmp_path: Path) -> None:
    completed = subprocess.run(  # noqa: S603 - fixed argv: this interpreter, our module
        [sys.executable, "-m", "nulabpass.cli", "saml", "verify", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "--idp-metadata" in completed.stderr


def test_sp_metadata_prints_metadata_with_every_certificate(
    capsys: pytest.CaptureFixture[str], files: Path
) -> None:
    code = main(
        [
            "saml",
            "sp-metadata",
            "--entity-id",
            SP_ENTITY_ID,
            "--acs-url",
            ACS_URL,
            "--cert",
            str(files / "sp.crt"),
        ]
    )
    assert code == 0
    root = etree.fromstring(capsys.readouterr().out.encode())
    assert root.get("entityID") == SP_ENTITY_ID
    assert len(root.findall(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")) == 2


def test_a_url_encoded_response_file_is_accepted(
    capsys: pytest.CaptureFixture[str], files: Path, build: Build
) -> None:
    from urllib.parse import quote

    encoded = quote(base64.b64encode(build()).decode(), safe="")
    assert "%2B" in encoded or "%2F" in encoded or "%3D" in encoded
    (files / "response.b64").write_text(encoded)
    code = main(
        [
            "saml",
            "verify",
            str(files / "response.b64"),
            "--idp-metadata",
            str(files / "idp.xml"),
            "--sp-entity-id",
            SP_ENTITY_ID,
            "--acs-url",
            ACS_URL,
            "--now",
            NOW_ARG,
            "--request-id",
            REQUEST_ID,
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["name_id"] == "alice@example.com"
