"""Opaque identifiers."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id", "new_ordered_id"]


def new_id(prefix: str) -> str:
    """Return a new random id such as ``acc_3f9c...``: 96 bits, URL- and log-safe."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_ordered_id(prefix: str) -> str:
    """Return a new id of the same shape whose first 48 bits are the current time in
    milliseconds and the other 48 random: ids made one after the other sort in order,
    so an index keyed by them grows at its end instead of at random pages (audit
    events, written at every change)."""
    return f"{prefix}_{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(6)}"
