"""``nulabpass saml verify`` and ``nulabpass saml sp-metadata``.

``verify`` prints one JSON object: ``{"valid": true, ...}`` and exit 0 when the response
is accepted, ``{"valid": false, "error": {"code", "message"}}`` and exit 1 when it is
rejected; usage problems (unreadable files, invalid metadata or key, a bad ``--now``)
exit 2 with a message on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote

from nulabpass.errors import NulabPassError
from nulabpass.saml._errors import SamlValidationError
from nulabpass.saml._metadata import parse_idp_metadata, sp_metadata
from nulabpass.saml._model import SamlPolicy
from nulabpass.saml._validate import SamlValidator

__all__ = ["add_saml_parser", "run_saml"]

USAGE_ERROR = 2


def add_saml_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``saml`` command and its actions."""
    saml = sub.add_parser("saml", help="SAML SSO tools for administrators")
    actions = saml.add_subparsers(dest="saml_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="validate a SAML response as the ACS would",
        description=(
            "Validate a SAMLResponse with the same rules as sign-in. Prints one JSON object; "
            "exits 0 when accepted, 1 when rejected (with the error code and a message "
            "saying what to fix), 2 on usage errors. Without --request-id the response is "
            "treated as unsolicited: accepted only with --idp-initiated, and never when it "
            "carries an InResponseTo."
        ),
    )
    verify.add_argument(
        "response_file",
        metavar="RESPONSE_FILE",
        help="file holding the SAMLResponse form value as POSTed (base64)",
    )
    verify.add_argument(
        "--idp-metadata", metavar="METADATA_XML", required=True, help="IdP metadata file"
    )
    verify.add_argument("--sp-entity-id", metavar="ID", required=True, help="SP entity ID")
    verify.add_argument("--acs-url", metavar="URL", required=True, help="SP ACS URL")
    verify.add_argument(
        "--request-id", metavar="ID", help="ID of the AuthnRequest this response answers"
    )
    verify.add_argument(
        "--idp-initiated", action="store_true", help="accept an unsolicited response"
    )
    verify.add_argument("--now", metavar="ISO8601", help="validate at this time")
    verify.add_argument(
        "--sp-key", metavar="PEM", help="SP private key file to decrypt EncryptedAssertion"
    )
    metadata = actions.add_parser(
        "sp-metadata",
        help="print this service provider's SAML metadata",
        description="Print SP metadata (entity ID, ACS URL, NameID format, certificates).",
    )
    metadata.add_argument("--entity-id", metavar="ID", required=True, help="SP entity ID")
    metadata.add_argument("--acs-url", metavar="URL", required=True, help="SP ACS URL")
    metadata.add_argument(
        "--cert",
        metavar="PEM",
        action="extend",
        nargs="+",
        default=[],
        help="certificate file(s) published for signing and encryption",
    )


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read the {what} {path!r}: {exc.strerror}") from None


class _Usage(Exception):
    pass


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Usage(
            f"--now {value!r} is not an ISO 8601 time such as 2026-12-04T09:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise _Usage("--now needs a time zone, e.g. 2026-12-04T09:00:00Z")
    return parsed


def run_saml(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``nulabpass saml ...``; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.saml_command == "verify":
            return _verify(args, out)
        return _sp_metadata(args, out)
    except _Usage as exc:
        print(f"nulabpass saml: error: {exc}", file=err)
        return USAGE_ERROR
    except NulabPassError as exc:
        print(f"nulabpass saml: error [{exc.code}]: {exc.message}", file=err)
        return USAGE_ERROR


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    now = _now(args.now)
    response = _read(args.response_file, "response file").strip()
    if b"%" in response:  # copied URL-encoded from a browser's network log
        response = unquote(response.decode("ascii", "replace")).encode("ascii", "replace")
    idp = parse_idp_metadata(_read(args.idp_metadata, "IdP metadata file"))
    keys = [_read(args.sp_key, "SP key file")] if args.sp_key else []
    policy = SamlPolicy(
        sp_entity_id=args.sp_entity_id,
        acs_url=args.acs_url,
        allow_idp_initiated=bool(args.idp_initiated),
    )
    try:
        validator = SamlValidator(idp, policy, keys)
    except ValueError as exc:
        raise _Usage(f"--sp-key: {exc}") from None
    try:
        login = validator.validate(response, now=now, request_id=args.request_id)
    except SamlValidationError as exc:
        print(
            json.dumps({"valid": False, "error": {"code": exc.code, "message": exc.message}}),
            file=out,
        )
        return 1
    print(
        json.dumps(
            {
                "valid": True,
                "issuer": login.issuer,
                "name_id": login.name_id,
                "name_id_format": login.name_id_format,
                "session_index": login.session_index,
                "assertion_id": login.assertion_id,
                "attributes": {name: list(values) for name, values in login.attributes.items()},
            }
        ),
        file=out,
    )
    return 0


def _sp_metadata(args: argparse.Namespace, out: TextIO) -> int:
    certs = [_read(path, "certificate file") for path in args.cert]
    xml = sp_metadata(
        entity_id=args.entity_id,
        acs_url=args.acs_url,
        signing_certificates=certs,
        encryption_certificates=certs,
    )
    out.write(xml.decode())
    return 0
