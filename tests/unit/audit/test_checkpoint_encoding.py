"""Checkpoint notes are six exact lines signed with Ed25519, and round-trip as JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nulabpass.audit._checkpoint import Checkpoint, checkpoint_bytes, sign_checkpoint
from nulabpass.audit.keys import StaticKeyProvider, key_id_of, public_key_of
from nulabpass.audit.verifier import AuditVerificationError, verify_checkpoint

SEED = bytes(range(32))
AT = datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=UTC)


def test_the_signed_note_is_six_lines_in_a_fixed_order() -> None:
    note = checkpoint_bytes("org_1", 42, "ab" * 32, AT, "ed25519:k")
    assert note == (
        b"nulabpass.audit.checkpoint.v1\norg_1\n42\n" + b"ab" * 32 + b"\n"
        b"2026-11-30T23:59:59.123456Z\ned25519:k\n"
    )
    with pytest.raises(ValueError, match="newline"):
        checkpoint_bytes("org\n1", 1, "00", AT, "k")


def test_a_signature_is_ed25519_over_the_note_and_verifies_by_key_id() -> None:
    keys = StaticKeyProvider(SEED)
    key = keys.audit_signing_key()
    cp = sign_checkpoint("org_1", 3, bytes(32), AT, key.key_id, key.private_key)
    expected = Ed25519PrivateKey.from_private_bytes(SEED).sign(
        checkpoint_bytes("org_1", 3, "00" * 32, AT, key.key_id)
    )
    assert cp.signature == expected.hex()
    assert key.key_id == key_id_of(public_key_of(SEED))
    assert verify_checkpoint(Checkpoint.from_json(cp.to_json()), keys.audit_public_key) == cp
    with pytest.raises(AuditVerificationError) as err:
        verify_checkpoint(
            Checkpoint.from_json({**cp.to_json(), "root_hash": "11" * 32}), keys.audit_public_key
        )
    assert err.value.code == "audit.checkpoint_signature_invalid"


def test_retired_keys_still_verify_old_checkpoints() -> None:
    old = StaticKeyProvider(SEED)
    old_key = old.audit_signing_key()
    cp = sign_checkpoint("org_1", 1, bytes(32), AT, old_key.key_id, old_key.private_key)
    new = StaticKeyProvider(bytes(32), retired={old_key.key_id: public_key_of(SEED)})
    assert new.audit_signing_key().key_id != old_key.key_id
    verify_checkpoint(cp, new.audit_public_key)


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {
            "scope": "o",
            "tree_size": "3",
            "root_hash": "",
            "issued_at": "2026-01-01T00:00:00Z",
            "key_id": "k",
            "signature": "",
        },
    ],
)
def test_malformed_checkpoint_json_is_rejected(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"checkpoint|tree_size"):
        Checkpoint.from_json(broken)
