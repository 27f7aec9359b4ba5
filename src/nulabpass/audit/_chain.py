"""The audit hash chain: canonical serialisation, commitments and verification.

Theory of operation
-------------------
Each organization (scope) has its own chain. Event ``n`` stores ``prev_hash`` = hash of
event ``n - 1`` (``GENESIS_HASH`` for the first) and ``hash`` = SHA-256 over a
domain-separated canonical JSON serialisation of all its fields, ``prev_hash`` and
``seq`` included. Changing, removing, inserting or reordering an event therefore breaks
the recomputed hashes or the links at that point.

Personal data is never hashed directly: the event holds, per slot, a commitment
SHA-256(tag, slot, salt, value) with a random 128-bit salt, and the value and salt are
stored apart. Erasure blanks value and salt; the commitment and thus the chain stay
intact, and without the salt nobody can test guesses against the commitment. While the
value is present, verification recomputes the commitment, so editing personal data is
detected too.

The serialisation is JSON with sorted keys, no insignificant white space, UTF-8, and
times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: stable across Python versions and stores.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

import attrs

from nulabpass.audit._model import EventRecord, PersonalDatum

__all__ = [
    "ChainVerification",
    "canonical_bytes",
    "check_event",
    "commit",
    "event_hash",
    "format_time",
    "new_salt",
]

_EVENT_TAG = b"nulabpass.audit.event.v1\n"
_COMMIT_TAG = b"nulabpass.audit.commit.v1\n"


def format_time(value: datetime) -> str:
    """Canonical UTC timestamp with microseconds (``YYYY-MM-DDTHH:MM:SS.ffffffZ``)."""
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"
    )


# One encoder for every event: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_salt() -> str:
    """A fresh random salt for one commitment."""
    return secrets.token_hex(16)


def commit(slot: str, salt: str, value: str) -> str:
    """Commitment to one personal value in one slot."""
    h = hashlib.sha256(_COMMIT_TAG)
    for part in (slot, salt, value):
        encoded = part.encode("utf-8")
        # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        h.update(len(encoded).to_bytes(4, "big"))
        h.update(encoded)
    return h.hexdigest()


def canonical_bytes(event: EventRecord) -> bytes:
    """The exact bytes hashed for ``event`` (every field except ``hash``)."""
    body = {
        "id": event.id,
        "scope": event.scope,
        "seq": event.seq,
        "occurred_at": format_time(event.occurred_at),
        "action": event.action,
        "category": event.category,
        "outcome": event.outcome.value,
        "actor": [event.actor_type, event.actor_id],
        "targets": [[t.type, t.id] for t in event.targets],
        "context": dict(event.context),
        "metadata": dict(event.metadata),
        "commitments": dict(event.commitments),
        "prev_hash": event.prev_hash,
    }
    return _ENCODER.encode(body).encode("utf-8")


def event_hash(event: EventRecord) -> str:
    """Hash of ``event`` as the chain defines it (ignores ``event.hash`` itself)."""
    return hashlib.sha256(_EVENT_TAG + canonical_bytes(event)).hexdigest()


@attrs.frozen(slots=True)
class ChainVerification:
    """The verdict of verifying one chain.

    ``ok`` is true when every link and every present commitment checks. Otherwise
    ``first_broken_seq`` / ``first_broken_id`` name the first event at fault, ``problem``
    is a stable code (``audit.hash_mismatch``, ``audit.link_broken``,
    ``audit.sequence_gap``, ``audit.personal_data_mismatch``) and ``message`` explains.
    Checkpoint problems (``audit.checkpoint_mismatch``, ``audit.checkpoint_beyond_log``,
    ``audit.checkpoint_signature_invalid``, ``audit.checkpoint_unknown_key``,
    ``audit.anchor_mismatch``) name the checkpoint in ``checkpoint_size`` instead.
    """

    scope: str
    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    problem: str | None = None
    message: str = ""
    #: Sequence number verification started at (after a purge: the anchor's next).
    start_seq: int = 1
    #: Stored checkpoints whose roots (and signatures, when keys were given) matched.
    checkpoints_checked: int = 0
    #: The tree size of the checkpoint at fault, for checkpoint problems.
    checkpoint_size: int | None = None
    #: Whether checkpoint signatures were checked (public keys were available).
    signatures_checked: bool = False


def check_event(
    event: EventRecord,
    expected_seq: int,
    expected_prev: str,
    data: tuple[PersonalDatum, ...],
) -> tuple[str, str] | None:
    """Check one event against its expected position; return ``(code, message)`` or
    ``None`` when it is sound."""
    return _check_one(event, expected_seq, expected_prev, data)


def _check_one(
    event: EventRecord,
    expected_seq: int,
    expected_prev: str,
    data: tuple[PersonalDatum, ...],
) -> tuple[str, str] | None:
    if event.seq != expected_seq:
        return (
            "audit.sequence_gap",
            f"Event {event.id} has sequence {event.seq} where {expected_seq} was expected: "
            "events were removed, inserted or reordered.",
        )
    if not hmac.compare_digest(event.prev_hash, expected_prev):
        return (
            "audit.link_broken",
            f"Event {event.id} (sequence {event.seq}) does not link to the event before "
            "it: an earlier event was changed, removed or reordered.",
        )
    if not hmac.compare_digest(event_hash(event), event.hash):
        return (
            "audit.hash_mismatch",
            f"Event {event.id} (sequence {event.seq}) was modified after it was recorded.",
        )
    for datum in data:
        committed = event.commitments.get(datum.slot)
        if committed is None:
            return (
                "audit.personal_data_mismatch",
                f"Event {event.id} (sequence {event.seq}) has personal data in slot "
                f"{datum.slot!r} that was never recorded with it.",
            )
        if datum.value is None or datum.salt is None:
            continue
        if not hmac.compare_digest(commit(datum.slot, datum.salt, datum.value), committed):
            return (
                "audit.personal_data_mismatch",
                f"Personal data in slot {datum.slot!r} of event {event.id} (sequence "
                f"{event.seq}) was modified after it was recorded.",
            )
    return None
