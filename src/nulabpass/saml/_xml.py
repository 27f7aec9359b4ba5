"""Hardened XML parsing and the names the SAML core uses.

Theory of operation: every SAML document (a response, the plaintext of an encrypted
assertion, IdP metadata) is parsed by :func:`parse_xml`, which refuses document type
declarations (so no entity can be declared, expanded or fetched), never touches the
network, never recovers from malformed input and bounds the size and the nesting depth.
The XPath expressions the validator needs are compiled once at import.
"""

from __future__ import annotations

import re
import threading
from typing import Final

from lxml import etree

from nulabpass.saml._errors import SamlValidationError

__all__ = [
    "DS",
    "MD",
    "NS",
    "SAML",
    "SAMLP",
    "XENC",
    "parse_xml",
]

SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
MD: Final = "urn:oasis:names:tc:SAML:2.0:metadata"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XENC: Final = "http://www.w3.org/2001/04/xmlenc#"
XENC11: Final = "http://www.w3.org/2009/xmlenc11#"
NS: Final = {"saml": SAML, "samlp": SAMLP, "md": MD, "ds": DS, "xenc": XENC}

#: Default bound on an encoded document; a realistic response is 5-20 KB.
DEFAULT_MAX_BYTES: Final = 256 * 1024
#: SAML responses nest about ten levels deep; anything past this is an attack.
MAX_DEPTH: Final = 48

_local = threading.local()
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)")

# ``/*`` repeated MAX_DEPTH+1 times selects any element nested deeper than MAX_DEPTH.
_TOO_DEEP = etree.XPath("boolean(/" + "/".join(["*"] * (MAX_DEPTH + 1)) + ")")


def _parser() -> etree.XMLParser:
    # lxml parsers keep per-call state: one per thread.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            recover=False,
            remove_blank_text=False,
            remove_comments=False,
            remove_pis=False,
            strip_cdata=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse_xml(data: bytes, *, what: str, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse ``data`` strictly; raise ``saml.malformed`` naming ``what`` otherwise."""
    if len(data) > max_bytes:
        raise SamlValidationError(
            "saml.too_large",
            f"The {what} is {len(data)} bytes; the limit is {max_bytes} bytes.",
            details={"received": str(len(data)), "expected": str(max_bytes)},
        )
    # A document type declaration (and so any entity declaration, which lives in its
    # internal subset) can only stand in the prolog, before the root element: anywhere
    # else the parser refuses it as malformed. Refusing it there before parsing means no
    # entity can be declared, expanded or fetched (XXE, billion laughs).
    if _declares(data):
        raise SamlValidationError(
            "saml.malformed",
            f"The {what} contains a document type declaration; SAML messages never do, "
            "so it is refused.",
        )
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SamlValidationError(
            "saml.malformed", f"The {what} is not well-formed XML: {_short(str(exc))}"
        ) from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise SamlValidationError(
            "saml.malformed", f"The {what} contains a document type declaration."
        )
    if _TOO_DEEP(root):
        raise SamlValidationError(
            "saml.malformed", f"The {what} nests elements deeper than {MAX_DEPTH} levels."
        )
    return root


def _declares(data: bytes) -> bool:
    """Whether the prolog of ``data`` holds a declaration (``<!DOCTYPE``, or any ``<!``
    markup other than a comment, which a well-formed prolog cannot otherwise contain).

    Only the prolog is read, skipping the XML declaration, processing instructions and
    comments: a 100 KB response costs a few bytes' scan instead of a pass over it all.
    Where the prolog cannot be delimited (an unterminated instruction or comment), the
    whole document is searched, as before this shortcut existed."""
    at = 0
    while True:
        at = data.find(b"<", at)
        if at < 0:
            return False
        if data.startswith(b"<?", at):
            end = data.find(b"?>", at + 2)
            if end < 0:
                break
            at = end + 2
        elif data.startswith(b"<!--", at):
            end = data.find(b"-->", at + 4)
            if end < 0:
                break
            at = end + 3
        else:
            return data.startswith(b"<!", at)
    return _DECLARATION.search(data) is not None


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
