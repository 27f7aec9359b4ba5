"""Opaque identifiers."""

from __future__ import annotations

import secrets

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """Return a new random id such as ``acc_3f9c...``: 96 bits, URL- and log-safe."""
    return f"{prefix}_{secrets.token_hex(12)}"
