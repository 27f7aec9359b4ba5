"""A whole SP-initiated sign-in through the facade against pysaml2 as the IdP.

pysaml2 learns our service provider only from ``np.saml.sp_metadata`` (the SP key's
certificate published there), checks the signature of the AuthnRequest that
``np.saml.begin_login`` produced, answers it with a signed assertion encrypted for our
certificate (AES-256-CBC, RSA-OAEP), and ``np.saml.complete_login`` signs the user in.
"""

from __future__ import annotations

import base64
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from nulabpass import Actor, NulabPass
from nulabpass.saml import SamlValidationError
from nulabpass.saml.testing import make_key_pair
from nulabpass.testing import (
    FrozenClock,
    MemoryKeyProvider,
    RecordingMailer,
    make_nulabpass,
    mark_domain_verified,
)

saml2 = pytest.importorskip("saml2")

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT  # noqa: E402
from saml2.config import IdPConfig  # noqa: E402
from saml2.metadata import entity_descriptor  # noqa: E402
from saml2.response import IncorrectlySigned  # noqa: E402
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID  # noqa: E402
from saml2.server import Server  # noqa: E402
from saml2.sigver import pre_encryption_part  # noqa: E402
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256  # noqa: E402

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(
    XMLSEC1 is None, reason="pysaml2's IdP needs the xmlsec1 binary (apt-get install xmlsec1)"
)

IDP_ID = "https://pysaml2-idp.example.test/metadata"
IDP_SSO = "https://pysaml2-idp.example.test/sso"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


class Setup:
    def __init__(self, workdir: Path) -> None:
        self.keys = MemoryKeyProvider()
        self.mailer = RecordingMailer()
        self.np: NulabPass = make_nulabpass(
            # pysaml2 stamps its messages with the real time.
            clock=FrozenClock(datetime.now(UTC).replace(microsecond=0)),
            mailer=self.mailer,
            keys=self.keys,
        )
        founder = self.np.accounts.register("founder@partner.test", "Founder")
        self.admin = Actor.account(founder.id)
        self.org_id = self.np.orgs.create(self.admin, "Acme").id
        self.np.plans.start_trial(self.admin, self.org_id)
        mark_domain_verified(self.np, self.org_id, "example.com")
        self.sp_key = self.keys.add_saml_key(self.org_id)
        self.workdir = workdir
        idp_keys = make_key_pair("pysaml2 idp")
        (workdir / "idp.key").write_bytes(idp_keys.key_pem)
        (workdir / "idp.crt").write_bytes(idp_keys.cert_pem)
        (workdir / "sp.crt").write_bytes(self.sp_key.certificate_pem)
        config = IdPConfig()
        config.load(
            {
                "entityid": IDP_ID,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (IDP_SSO, BINDING_HTTP_REDIRECT),
                                (IDP_SSO, BINDING_HTTP_POST),
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "want_authn_requests_signed": True,
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                    }
                },
                "key_file": str(workdir / "idp.key"),
                "cert_file": str(workdir / "idp.crt"),
                "xmlsec_binary": XMLSEC1,
                "crypto_backend": "xmlsec1",
                "metadata": {"inline": [self.np.saml.sp_metadata(self.org_id).decode()]},
                "delete_tmpfiles": True,
            }
        )
        self.server = Server(config=config)
        idp_metadata = str(entity_descriptor(config)).encode()
        self.np.saml.configure(self.admin, self.org_id, metadata_xml=idp_metadata)

    def managed(self, email: str) -> str:
        """A managed account of the organization that has accepted its invitation."""
        team = self.np.teams.create(self.admin, self.org_id, "Everyone")
        account = self.np.members.create_managed(
            self.admin, self.org_id, team_id=team.id, email=email, display_name="Dana"
        )
        self.np.outbox.dispatch_pending()
        self.np.invitations.accept(self.mailer.tokens_for(email)[-1])
        return account.id

    def answer(self, request_id: str, email: str) -> str:
        """pysaml2's signed response to ``request_id``, its assertion encrypted for us."""
        xml = str(
            self.server.create_authn_response(
                identity={"mail": [email]},
                in_response_to=request_id,
                destination=self.np.saml.acs_url(self.org_id),
                sp_entity_id=self.np.saml.sp_entity_id(self.org_id),
                name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
                authn={"class_ref": PASSWORD, "authn_auth": IDP_ID},
                sign_response=False,
                sign_assertion=True,
                sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
            )
        )
        root = etree.fromstring(xml.encode())
        assertion = root.find(f"{{{SAML}}}Assertion")
        assert assertion is not None
        cert_body = "".join(self.sp_key.certificate_pem.decode().splitlines()[1:-1])
        template = str(pre_encryption_part(encrypt_cert=cert_body, msg_enc=AES256_CBC))
        wrapper = etree.SubElement(root, f"{{{SAML}}}EncryptedAssertion")
        root.replace(assertion, wrapper)
        wrapper.append(assertion)
        encrypted = self.server.sec.crypto.encrypt_assertion(
            etree.tostring(root).decode(),
            str(self.workdir / "sp.crt"),
            template,
            key_type="aes-256",
            node_xpath="/*[local-name()='Response']/*[local-name()='EncryptedAssertion']"
            "/*[local-name()='Assertion']",
        )
        raw = encrypted.encode() if isinstance(encrypted, str) else bytes(encrypted)
        assert b"EncryptedData" in raw
        return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return Setup(tmp_path_factory.mktemp("pysaml2-facade"))


def test_a_signed_request_and_an_encrypted_answer_sign_the_user_in(setup: Setup) -> None:
    account_id = setup.managed("dana@example.com")
    redirect = setup.np.saml.begin_login(setup.org_id, relay_state="/inbox")
    query = {k: v[0] for k, v in parse_qs(urlsplit(redirect.url).query).items()}
    request = setup.server.parse_authn_request(
        query["SAMLRequest"],
        BINDING_HTTP_REDIRECT,
        relay_state=query["RelayState"],
        sigalg=query["SigAlg"],
        signature=query["Signature"],
    )
    assert request.message.id == redirect.request_id
    assert request.message.issuer.text == setup.np.saml.sp_entity_id(setup.org_id)
    with pytest.raises(IncorrectlySigned):
        setup.server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state="/admin",
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        )
    answer = setup.answer(redirect.request_id, "dana@example.com")
    result = setup.np.saml.complete_login(setup.org_id, answer, state=redirect.state)
    assert result.account_id == account_id
    assert result.relay_state == "/inbox"
    # The same answer cannot be used again, with or without the state.
    with pytest.raises(SamlValidationError) as err:
        setup.np.saml.complete_login(setup.org_id, answer, state=redirect.state)
    assert err.value.code == "saml.state_mismatch"
