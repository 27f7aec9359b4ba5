"""Signed checkpoints: an organization's Merkle tree size and root, signed with Ed25519.

The signed bytes are a small text note, one field per line, so that any verifier can
rebuild them without a JSON library::

    nulabpass.audit.checkpoint.v1
    <scope>
    <tree size in decimal>
    <root hash, lowercase hex>
    <issued at, YYYY-MM-DDTHH:MM:SS.ffffffZ>
    <key id>

The signature is Ed25519 (RFC 8032) over those bytes, the last line ending in a newline.
Keys rotate: each checkpoint names the key that signed it, and verifiers look the public
key up by that id.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from datetime import datetime

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from nulabpass.audit._chain import format_time

__all__ = [
    "Checkpoint",
    "CheckpointProblem",
    "check_checkpoint",
    "checkpoint_bytes",
    "sign_checkpoint",
]

_TAG = "nulabpass.audit.checkpoint.v1"


@attrs.frozen(slots=True)
class Checkpoint:
    """A signed statement that ``scope``'s log had ``tree_size`` events with Merkle root
    ``root_hash`` (hex) at ``issued_at``; ``signature`` (hex) is by key ``key_id``."""

    scope: str
    tree_size: int
    root_hash: str
    issued_at: datetime
    key_id: str
    signature: str
    #: Hex roots of the perfect subtrees over the first ``tree_size`` events (not signed:
    #: a cache that lets the next checkpoint start here; verification recomputes it).
    frontier: tuple[str, ...] = attrs.field(default=(), eq=False, repr=False)

    def to_json(self) -> dict[str, str | int]:
        """The checkpoint as JSON values (exports and the CLI carry it this way)."""
        return {
            "scope": self.scope,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "issued_at": format_time(self.issued_at),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Checkpoint:
        """Parse :meth:`to_json` output; raises ``ValueError`` when malformed."""
        try:
            size = data["tree_size"]
            issued = datetime.fromisoformat(str(data["issued_at"]).replace("Z", "+00:00"))
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError("tree_size must be a non-negative integer")
            return cls(
                scope=str(data["scope"]),
                tree_size=size,
                root_hash=str(data["root_hash"]),
                issued_at=issued,
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a checkpoint: {exc}") from None


def checkpoint_bytes(
    scope: str, tree_size: int, root_hash: str, issued_at: datetime, key_id: str
) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    for name, value in (("scope", scope), ("key id", key_id)):
        if "\n" in value:
            raise ValueError(f"the {name} must not contain a newline")
    lines = (_TAG, scope, str(tree_size), root_hash, format_time(issued_at), key_id)
    return ("\n".join(lines) + "\n").encode("utf-8")


def sign_checkpoint(
    scope: str,
    tree_size: int,
    root: bytes,
    issued_at: datetime,
    key_id: str,
    private_key: bytes,
) -> Checkpoint:
    """Sign a checkpoint with the 32-byte Ed25519 private key ``private_key``."""
    key = Ed25519PrivateKey.from_private_bytes(private_key)
    root_hex = root.hex()
    signature = key.sign(checkpoint_bytes(scope, tree_size, root_hex, issued_at, key_id))
    return Checkpoint(scope, tree_size, root_hex, issued_at, key_id, signature.hex())


@attrs.frozen(slots=True)
class CheckpointProblem:
    """Why a checkpoint does not verify: a stable ``code`` and a ``message``."""

    code: str
    message: str


def check_checkpoint(
    checkpoint: Checkpoint, public_key: Callable[[str], bytes | None]
) -> CheckpointProblem | None:
    """Check the signature of ``checkpoint``; ``public_key`` maps a key id to the 32-byte
    Ed25519 public key (``None``: unknown). Returns ``None`` when it verifies."""
    raw = public_key(checkpoint.key_id)
    if raw is None:
        return CheckpointProblem(
            "audit.checkpoint_unknown_key",
            f"The checkpoint of {checkpoint.tree_size} events was signed with key "
            f"{checkpoint.key_id!r}, which is not among the public keys given.",
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(raw)
        signature = binascii.unhexlify(checkpoint.signature)
        key.verify(
            signature,
            checkpoint_bytes(
                checkpoint.scope,
                checkpoint.tree_size,
                checkpoint.root_hash,
                checkpoint.issued_at,
                checkpoint.key_id,
            ),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return CheckpointProblem(
            "audit.checkpoint_signature_invalid",
            f"The signature of the checkpoint of {checkpoint.tree_size} events (key "
            f"{checkpoint.key_id!r}) does not verify: the checkpoint was altered or not "
            "signed by that key.",
        )
    return None
