"""SAML response validation: nulabpass beside python3-saml and bare python-xmlsec.

Cases (the same POSTed ``SAMLResponse`` values for every implementation):

- ``assertion_signed``, ``response_signed``, ``both_signed``: realistic responses of
  about 7.5 KB with ten attributes (claim names as Microsoft Entra ID sends them);
- ``large``: a response with 500 attributes whose assertion is signed.

Implementations, interleaved in one process (each round times a batch of every
implementation in turn, so drift in machine load hits them alike):

- **nulabpass**: ``SamlValidator.validate`` (built once per configuration, as a host
  does), every check of the issue included;
- **python3-saml** (the anchor): ``OneLogin_Saml2_Response.is_valid`` in strict mode
  with the request id, its clock fixed by replacing ``OneLogin_Saml2_Utils.now``; the
  settings object is built once, outside the timing;
- **xmlsec floor**: base64 decoding, an lxml parse and one python-xmlsec verify per
  signature (two for ``both_signed``) with keys loaded once; no SAML checks at all.
  Keys are built from the certificate's public key, as nulabpass builds them (a key
  carrying its certificate costs libxmlsec1 about 0.1 ms more per verify).

Every implementation must accept every response before timing starts. Times are the
CPU time of the benchmark's thread (``time.thread_time``), so that other processes on a
shared machine do not skew them. Prints the per-call medians and::

    ratio saml.<case>.vs_python3_saml: <python3-saml time / nulabpass time>
    ratio saml.<case>.vs_xmlsec_floor: <floor time / nulabpass time>

Targets: at least 6 against python3-saml on the 7.5 KB cases and 2 on ``large``; at
least 0.67 against the floor. Run it with ``.venv/bin/python benchmarks/bench_saml.py``
(python3-saml comes with ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from nulabpass.saml import SamlPolicy, SamlValidator
from nulabpass.saml.testing import TestIdentityProvider

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SP_ID = "https://sp.example.test/saml/metadata"
ACS = "https://sp.example.test/saml/acs"
REQUEST_ID = "_bench_request_0001"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"

_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
TEN_ATTRIBUTES = {
    _CLAIMS + "emailaddress": ["alice.example@contoso.example.com"],
    _CLAIMS + "givenname": ["Alice"],
    _CLAIMS + "surname": ["Example"],
    _CLAIMS + "name": ["alice.example@contoso.example.com"],
    "http://schemas.microsoft.com/identity/claims/tenantid": [
        "8f0c6a3e-2b1d-4e59-9a7c-3d5f1e2b4c6a"
    ],
    "http://schemas.microsoft.com/identity/claims/objectidentifier": [
        "0d4b8f2a-7c3e-41a9-b5d6-2e8f9a1c3b7d"
    ],
    "http://schemas.microsoft.com/identity/claims/displayname": ["Alice Example"],
    "http://schemas.microsoft.com/identity/claims/identityprovider": [
        "https://sts.windows.net/8f0c6a3e-2b1d-4e59-9a7c-3d5f1e2b4c6a/"
    ],
    "http://schemas.microsoft.com/claims/authnmethodsreferences": [
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
        "http://schemas.microsoft.com/claims/multipleauthn",
    ],
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": [
        "2b7e1f4a-9c3d-4a8e-b6f5-1d2c3e4f5a6b",
        "7c9d2e1f-4b3a-4c5d-8e7f-6a5b4c3d2e1f",
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    ],
}
LARGE_ATTRIBUTES = {
    f"urn:oid:1.3.6.1.4.1.99999.{i}": [f"value number {i} of a large attribute set"]
    for i in range(500)
}


@dataclass
class Case:
    name: str
    value: bytes  # the POSTed SAMLResponse value (base64)
    signatures: int


def build_cases(idp: TestIdentityProvider) -> list[Case]:
    def make(name: str, attributes: dict[str, list[str]], **signing: bool) -> Case:
        xml = idp.response(
            sp_entity_id=SP_ID,
            acs_url=ACS,
            name_id="alice.example@contoso.example.com",
            now=NOW,
            in_response_to=REQUEST_ID,
            attributes=attributes,
            **signing,
        )
        count = int(signing.get("sign_response", False)) + int(signing.get("sign_assertion", True))
        return Case(name, base64.b64encode(xml), count)

    return [
        make("assertion_signed", TEN_ATTRIBUTES, sign_assertion=True),
        make("response_signed", TEN_ATTRIBUTES, sign_assertion=False, sign_response=True),
        make("both_signed", TEN_ATTRIBUTES, sign_assertion=True, sign_response=True),
        make("large", LARGE_ATTRIBUTES, sign_assertion=True),
    ]


def nulabpass_validator(idp: TestIdentityProvider) -> Callable[[bytes], object]:
    validator = SamlValidator(idp.config(), SamlPolicy(sp_entity_id=SP_ID, acs_url=ACS))

    def run(value: bytes) -> object:
        return validator.validate(value, now=NOW, request_id=REQUEST_ID)

    return run


def python3_saml_validator(idp: TestIdentityProvider) -> Callable[[bytes], object]:
    from onelogin.saml2.response import OneLogin_Saml2_Response
    from onelogin.saml2.settings import OneLogin_Saml2_Settings
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    fixed = int(NOW.timestamp())
    OneLogin_Saml2_Utils.now = staticmethod(lambda: fixed)  # type: ignore[method-assign]
    settings = OneLogin_Saml2_Settings(
        {
            "strict": True,
            "sp": {
                "entityId": SP_ID,
                "assertionConsumerService": {
                    "url": ACS,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                },
                "NameIDFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            },
            "idp": {
                "entityId": idp.entity_id,
                "singleSignOnService": {
                    "url": idp.sso_url,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                },
                "x509cert": base64.b64encode(idp.keys.cert_der).decode(),
            },
            "security": {"wantAssertionsSigned": False, "wantMessagesSigned": False},
        },
        sp_validation_only=True,
    )
    request_data = {
        "https": "on",
        "http_host": "sp.example.test",
        "server_port": "443",
        "script_name": "/saml/acs",
    }

    def run(value: bytes) -> object:
        response = OneLogin_Saml2_Response(settings, value.decode())
        if not response.is_valid(request_data, request_id=REQUEST_ID, raise_exceptions=True):
            raise AssertionError("python3-saml rejected the response")
        return response

    return run


def floor_validator(idp: TestIdentityProvider) -> Callable[[bytes], object]:
    public_pem = (
        x509.load_der_x509_certificate(idp.keys.cert_der)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key = xmlsec.Key.from_memory(public_pem, xmlsec.KeyFormat.PEM, None)
    assertion_tag = f"{{{SAML}}}Assertion"
    signature_tag = f"{{{DS}}}Signature"

    def verify(element: etree._Element) -> None:
        signature = element.find(signature_tag)
        if signature is None:
            return
        ctx = xmlsec.SignatureContext()
        ctx.register_id(element, "ID")
        ctx.key = key
        ctx.verify(signature)

    def run(value: bytes) -> object:
        root = etree.fromstring(base64.b64decode(value))
        verify(root)
        verify(root.find(assertion_tag))
        return root

    return run


def time_batch(function: Callable[[bytes], object], value: bytes, batch: int) -> float:
    # CPU time of this thread: every implementation is single-threaded and CPU-bound,
    # and this keeps other load on a shared machine out of the figures.
    start = time.thread_time()
    for _ in range(batch):
        function(value)
    return (time.thread_time() - start) / batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=200, help="calls per batch (7.5 KB)")
    args = parser.parse_args()

    idp = TestIdentityProvider(
        entity_id="https://sts.windows.net/8f0c6a3e-2b1d-4e59-9a7c-3d5f1e2b4c6a/",
        sso_url="https://login.microsoftonline.com/8f0c6a3e/saml2",
    )
    cases = build_cases(idp)
    implementations = {
        "nulabpass": nulabpass_validator(idp),
        "python3-saml": python3_saml_validator(idp),
        "xmlsec floor": floor_validator(idp),
    }
    for case in cases:
        for name, function in implementations.items():
            try:
                function(case.value)
            except Exception as exc:
                print(f"{name} rejected {case.name}: {exc!r}", file=sys.stderr)
                return 1

    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"xmlsec {xmlsec.get_libxmlsec_version()}, libxml2 {xmlsec.get_libxml_version()}, "
        f"rounds {args.rounds}"
    )
    for case in cases:
        size = len(base64.b64decode(case.value))
        print(f"case {case.name}: {size} bytes, {case.signatures} signature(s)")

    samples: dict[tuple[str, str], list[float]] = {}
    gc.collect()
    for _ in range(args.rounds):
        for case in cases:
            batch = args.batch if case.name != "large" else max(1, args.batch // 10)
            for name, function in implementations.items():
                samples.setdefault((case.name, name), []).append(
                    time_batch(function, case.value, batch)
                )

    for case in cases:
        medians = {name: statistics.median(samples[(case.name, name)]) for name in implementations}
        figures = ", ".join(f"{name} {seconds * 1e3:.3f} ms" for name, seconds in medians.items())
        print(f"{case.name}: {figures}")
    for case in cases:
        ours = statistics.median(samples[(case.name, "nulabpass")])
        anchor = statistics.median(samples[(case.name, "python3-saml")])
        floor = statistics.median(samples[(case.name, "xmlsec floor")])
        print(f"ratio saml.{case.name}.vs_python3_saml: {anchor / ours:.3g}")
        print(f"ratio saml.{case.name}.vs_xmlsec_floor: {floor / ours:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
