"""AuthnRequests for SP-initiated sign-in (saml-core 3.4.1, saml-bindings 3.4 and 3.5).

Pure: the request id and the issue instant are arguments; signatures go through
libxmlsec1. The HTTP-Redirect binding DEFLATEs the request and, with a key, signs the
query string with RSA-SHA256 (bindings 3.4.4.1); the HTTP-POST binding carries the
request base64-encoded in a form and, with a key, an enveloped XML signature.
"""

from __future__ import annotations

import base64
import html
import secrets
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from urllib.parse import quote, urlsplit

import attrs
from lxml import etree

from nulabpass.errors import InvalidInput
from nulabpass.saml._model import BINDING_POST, BINDING_REDIRECT, NAMEID_EMAIL, IdpConfig
from nulabpass.saml._xml import SAML, SAMLP
from nulabpass.saml._xmlsec import xmlsec

__all__ = [
    "SIG_ALG_RSA_SHA256",
    "AuthnRequestMessage",
    "build_authn_request",
    "check_relay_state",
    "new_request_id",
]

SIG_ALG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_MAX_RELAY_STATE = 80  # bytes, saml-bindings 3.4.3 and 3.5.3


def new_request_id() -> str:
    """A fresh, unguessable AuthnRequest ID (an xs:ID: it starts with a letter or ``_``)."""
    return "_" + secrets.token_hex(20)


def check_relay_state(value: str) -> str:
    """Accept ``value`` only as a same-site relative path such as ``/projects/42``.

    Refuses absolute and scheme-relative URLs (``//evil.example``, ``/\\evil.example``),
    backslashes and control characters, so RelayState can never become an open redirect.
    """
    if (
        not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or "\\" in value
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
        or len(value.encode()) > _MAX_RELAY_STATE
    ):
        raise InvalidInput(
            "RelayState must be a relative path on this site starting with a single '/' "
            f"and at most {_MAX_RELAY_STATE} bytes.",
            code="saml.relay_state_invalid",
        )
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        raise InvalidInput(
            "RelayState must be a relative path on this site.", code="saml.relay_state_invalid"
        )
    return value


def _frozen_form(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(slots=True)
class AuthnRequestMessage:
    """An AuthnRequest ready to send.

    For HTTP-Redirect, send the browser to ``url``. For HTTP-POST, render
    :meth:`html_form` (or post ``form`` to ``url`` yourself).
    """

    request_id: str
    binding: str
    url: str
    xml: bytes
    form: Mapping[str, str] = attrs.field(converter=_frozen_form)

    def html_form(self) -> str:
        """A self-submitting HTML form for the HTTP-POST binding."""
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in self.form.items()
        )
        return (
            '<!DOCTYPE html><html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(self.url)}">{fields}'
            '<noscript><button type="submit">Continue</button></noscript>'
            "</form></body></html>"
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_key(pem: bytes) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None)
    except xmlsec.Error:
        raise InvalidInput(
            "The SP signing key is not a PEM private key.", code="saml.sp_key_invalid"
        ) from None


def build_authn_request(
    *,
    idp: IdpConfig,
    sp_entity_id: str,
    acs_url: str,
    request_id: str,
    issue_instant: datetime,
    binding: str = BINDING_REDIRECT,
    relay_state: str | None = None,
    signing_key: bytes | None = None,
    force_authn: bool = False,
) -> AuthnRequestMessage:
    """Build an AuthnRequest asking ``idp`` to authenticate a user for this SP.

    ``signing_key`` is the SP's PEM private key; it is required when the IdP's metadata
    says ``WantAuthnRequestsSigned``.
    """
    if relay_state is not None:
        check_relay_state(relay_state)
    if idp.want_authn_requests_signed and signing_key is None:
        raise InvalidInput(
            "The identity provider requires signed AuthnRequests "
            "(WantAuthnRequestsSigned); configure an SP signing key.",
            code="saml.sp_key_required",
        )
    destination = idp.sso_redirect_url if binding == BINDING_REDIRECT else idp.sso_post_url
    if binding not in (BINDING_REDIRECT, BINDING_POST) or destination is None:
        raise InvalidInput(
            f"The identity provider has no SingleSignOnService for binding {binding}.",
            code="saml.binding_unsupported",
        )
    root = etree.Element(f"{{{SAMLP}}}AuthnRequest", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", request_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", _iso(issue_instant))
    root.set("Destination", destination)
    root.set("ProtocolBinding", BINDING_POST)
    root.set("AssertionConsumerServiceURL", acs_url)
    if force_authn:
        root.set("ForceAuthn", "true")
    etree.SubElement(root, f"{{{SAML}}}Issuer").text = sp_entity_id
    policy = etree.SubElement(root, f"{{{SAMLP}}}NameIDPolicy")
    policy.set("Format", NAMEID_EMAIL)
    policy.set("AllowCreate", "true")

    if binding == BINDING_REDIRECT:
        xml = etree.tostring(root, encoding="UTF-8")
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = compressor.compress(xml) + compressor.flush()
        query = "SAMLRequest=" + quote(base64.b64encode(deflated).decode(), safe="")
        if relay_state is not None:
            query += "&RelayState=" + quote(relay_state, safe="")
        if signing_key is not None:
            query += "&SigAlg=" + quote(SIG_ALG_RSA_SHA256, safe="")
            ctx = xmlsec.SignatureContext()
            ctx.key = _load_key(signing_key)
            signature = ctx.sign_binary(query.encode(), xmlsec.Transform.RSA_SHA256)
            query += "&Signature=" + quote(base64.b64encode(signature).decode(), safe="")
        separator = "&" if urlsplit(destination).query else "?"
        return AuthnRequestMessage(
            request_id=request_id,
            binding=binding,
            url=destination + separator + query,
            xml=xml,
            form={},
        )

    if signing_key is not None:
        signature_node = xmlsec.template.create(
            root, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256, ns="ds"
        )
        root.insert(1, signature_node)  # after Issuer (core 3.4.1 schema order)
        ref = xmlsec.template.add_reference(
            signature_node, xmlsec.Transform.SHA256, uri="#" + request_id
        )
        xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
        xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
        ctx = xmlsec.SignatureContext()
        ctx.register_id(root, "ID")
        ctx.key = _load_key(signing_key)
        ctx.sign(signature_node)
    xml = etree.tostring(root, encoding="UTF-8")
    form = {"SAMLRequest": base64.b64encode(xml).decode()}
    if relay_state is not None:
        form["RelayState"] = relay_state
    return AuthnRequestMessage(
        request_id=request_id, binding=binding, url=destination, xml=xml, form=form
    )
