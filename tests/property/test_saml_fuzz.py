"""Property: the SAML validator rejects arbitrary input only with SamlValidationError."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nulabpass.saml import SamlPolicy, SamlValidationError, SamlValidator
from nulabpass.saml.testing import TestIdentityProvider, make_key_pair

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
POLICY = SamlPolicy(sp_entity_id="https://sp.example.test", acs_url="https://sp.example.test/acs")
_IDP = TestIdentityProvider()
_SP = make_key_pair("sp")
VALIDATOR = SamlValidator(_IDP.config(), POLICY, [_SP.key_pem])


def _genuine(**options: object) -> bytes:
    return _IDP.response(
        sp_entity_id=POLICY.sp_entity_id,
        acs_url=POLICY.acs_url,
        name_id="alice@example.com",
        now=NOW,
        in_response_to="_r",
        attributes={"groups": ["a", "b"]},
        **options,
    )


SEEDS = [
    _genuine(),
    _genuine(sign_response=True),
    _genuine(encrypt_for=_SP.cert_pem, sign_response=True, sign_assertion=False),
]


def _only_saml_errors(data: bytes | str, request_id: str | None = "_r") -> None:
    with contextlib.suppress(SamlValidationError):
        login = VALIDATOR.validate(data, now=NOW, request_id=request_id)
        dict(login.attributes)  # read lazily: must not fail either


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_saml_validation_error(data: bytes) -> None:
    _only_saml_errors(data)
    _only_saml_errors(base64.b64encode(data))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=512))
def test_arbitrary_text_raises_only_saml_validation_error(data: str) -> None:
    _only_saml_errors(data)
    _only_saml_errors("<" + data, request_id=None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.binary(min_size=0, max_size=8)),
        min_size=1,
        max_size=4,
    ),
    truncate=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_mutated_genuine_responses_raise_only_saml_validation_error(
    seed: int, edits: list[tuple[int, bytes]], truncate: int | None
) -> None:
    data = bytearray(SEEDS[seed])
    for position, replacement in edits:
        at = position % len(data)
        data[at : at + len(replacement)] = replacement
    if truncate is not None:
        del data[truncate % len(data) :]
    _only_saml_errors(bytes(data))


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_the_unmutated_seeds_are_accepted(seed: int) -> None:
    assert VALIDATOR.validate(SEEDS[seed], now=NOW, request_id="_r").name_id == "alice@example.com"
