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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import attrs

from nulabpass.audit._model import ChainRow, EventRecord, PersonalDatum

__all__ = [
    "ChainVerification",
    "canonical_bytes",
    "check_event",
    "check_row",
    "commit",
    "event_hash",
    "format_time",
    "new_salt",
]

_EVENT_TAG = b"nulabpass.audit.event.v1\n"
_COMMIT_TAG = b"nulabpass.audit.commit.v1\n"
_sha256 = hashlib.sha256
_equal = hmac.compare_digest


def format_time(value: datetime) -> str:
    """Canonical UTC timestamp with microseconds (``YYYY-MM-DDTHH:MM:SS.ffffffZ``)."""
    v = value if value.tzinfo is UTC else value.astimezone(UTC)
    # ``isoformat`` is implemented in C; with the offset dropped and microseconds forced
    # it writes exactly the fixed-width form above, which verification needs per event.
    return v.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# One encoder for every event: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_salt() -> str:
    """A fresh random salt for one commitment."""
    return secrets.token_hex(16)


def commit(slot: str, salt: str, value: str) -> str:
    """Commitment to one personal value in one slot."""
    a, b, c = slot.encode("utf-8"), salt.encode("utf-8"), value.encode("utf-8")
    # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    return _sha256(
        b"".join(
            (
                _COMMIT_TAG,
                len(a).to_bytes(4, "big"),
                a,
                len(b).to_bytes(4, "big"),
                b,
                len(c).to_bytes(4, "big"),
                c,
            )
        )
    ).hexdigest()


def canonical_bytes(event: EventRecord) -> bytes:
    """The exact bytes hashed for ``event`` (every field except ``hash``)."""
    return _canonical(
        event.id,
        event.scope,
        event.seq,
        event.occurred_at,
        event.action,
        event.category,
        event.outcome.value,
        event.actor_type,
        event.actor_id,
        [(t.type, t.id) for t in event.targets],
        event.context,
        event.metadata,
        event.commitments,
        event.prev_hash,
    )


def _canonical(
    id_: str,
    scope: str,
    seq: int,
    occurred_at: datetime,
    action: str,
    category: str,
    outcome: str,
    actor_type: str,
    actor_id: str,
    targets: Sequence[tuple[str, str]],
    context: Mapping[str, str],
    metadata: Mapping[str, str | int | bool | None],
    commitments: Mapping[str, str],
    prev_hash: str,
) -> bytes:
    # The one definition of the hashed bytes, shared by events and verification rows.
    # JSON writes tuples as arrays, so the target pairs need no conversion.
    body = {
        "id": id_,
        "scope": scope,
        "seq": seq,
        "occurred_at": format_time(occurred_at),
        "action": action,
        "category": category,
        "outcome": outcome,
        "actor": (actor_type, actor_id),
        "targets": targets,
        "context": context if type(context) is dict else dict(context),
        "metadata": metadata if type(metadata) is dict else dict(metadata),
        "commitments": commitments if type(commitments) is dict else dict(commitments),
        "prev_hash": prev_hash,
    }
    return _ENCODER.encode(body).encode("utf-8")


def event_hash(event: EventRecord) -> str:
    """Hash of ``event`` as the chain defines it (ignores ``event.hash`` itself)."""
    return _sha256(_EVENT_TAG + canonical_bytes(event)).hexdigest()


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
    row: ChainRow = (
        event.seq,
        event.id,
        event.occurred_at,
        event.action,
        event.category,
        event.outcome.value,
        event.actor_type,
        event.actor_id,
        tuple((t.type, t.id) for t in event.targets),
        event.context,
        event.metadata,
        event.commitments,
        event.prev_hash,
        event.hash,
        tuple((d.slot, d.salt, d.value) for d in data),
    )
    return check_row(row, event.scope, expected_seq, expected_prev)


def check_row(
    row: ChainRow, scope: str, expected_seq: int, expected_prev: str
) -> tuple[str, str] | None:
    """:func:`check_event` for a verification row of ``scope`` (see
    :data:`~nulabpass.audit._model.ChainRow`)."""
    (
        seq,
        id_,
        occurred_at,
        action,
        category,
        outcome,
        actor_type,
        actor_id,
        targets,
        context,
        metadata,
        commitments,
        prev_hash,
        stored_hash,
        personal,
    ) = row
    if seq != expected_seq:
        return (
            "audit.sequence_gap",
            f"Event {id_} has sequence {seq} where {expected_seq} was expected: "
            "events were removed, inserted or reordered.",
        )
    if not _equal(prev_hash, expected_prev):
        return (
            "audit.link_broken",
            f"Event {id_} (sequence {seq}) does not link to the event before "
            "it: an earlier event was changed, removed or reordered.",
        )
    body = _canonical(
        id_,
        scope,
        seq,
        occurred_at,
        action,
        category,
        outcome,
        actor_type,
        actor_id,
        targets,
        context,
        metadata,
        commitments,
        prev_hash,
    )
    if not _equal(_sha256(_EVENT_TAG + body).hexdigest(), stored_hash):
        return (
            "audit.hash_mismatch",
            f"Event {id_} (sequence {seq}) was modified after it was recorded.",
        )
    for slot, salt, value in personal:
        committed = commitments.get(slot)
        if committed is None:
            return (
                "audit.personal_data_mismatch",
                f"Event {id_} (sequence {seq}) has personal data in slot "
                f"{slot!r} that was never recorded with it.",
            )
        if value is None or salt is None:
            continue
        if not _equal(commit(slot, salt, value), committed):
            return (
                "audit.personal_data_mismatch",
                f"Personal data in slot {slot!r} of event {id_} (sequence "
                f"{seq}) was modified after it was recorded.",
            )
    return None
