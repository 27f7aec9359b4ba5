"""Fixtures of the SAML unit tests: one IdP, one SP key pair, a policy and a fixed time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from nulabpass.saml import IdpConfig, SamlLogin, SamlPolicy, SamlValidator
from nulabpass.saml.testing import TestIdentityProvider, TestKeyPair, make_key_pair

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SP_ENTITY_ID = "https://sp.example.test/saml/metadata"
ACS_URL = "https://sp.example.test/saml/acs"
REQUEST_ID = "_request0001"


@pytest.fixture(scope="session")
def idp() -> TestIdentityProvider:
    return TestIdentityProvider()


@pytest.fixture(scope="session")
def sp_keys() -> TestKeyPair:
    return make_key_pair("sp")


@pytest.fixture(scope="session")
def idp_config(idp: TestIdentityProvider) -> IdpConfig:
    return idp.config()


@pytest.fixture
def policy() -> SamlPolicy:
    return SamlPolicy(sp_entity_id=SP_ENTITY_ID, acs_url=ACS_URL)


@pytest.fixture
def validator(idp_config: IdpConfig, policy: SamlPolicy, sp_keys: TestKeyPair) -> SamlValidator:
    return SamlValidator(idp_config, policy, [sp_keys.key_pem])


Build = Callable[..., bytes]


@pytest.fixture
def build(idp: TestIdentityProvider) -> Build:
    """Build a response for this SP at NOW answering REQUEST_ID; override any field."""

    def make(**fields: object) -> bytes:
        defaults: dict[str, object] = {
            "sp_entity_id": SP_ENTITY_ID,
            "acs_url": ACS_URL,
            "name_id": "alice@example.com",
            "now": NOW,
            "in_response_to": REQUEST_ID,
        }
        defaults.update(fields)
        return idp.response(**defaults)

    return make


Validate = Callable[..., SamlLogin]


@pytest.fixture
def validate(validator: SamlValidator) -> Validate:
    def run(xml: bytes | str, **kwargs: object) -> SamlLogin:
        options: dict[str, object] = {"now": NOW, "request_id": REQUEST_ID}
        options.update(kwargs)
        return validator.validate(xml, **options)  # type: ignore[arg-type]

    return run
