"""Audit event records as stored.

An event's chained part (``EventRecord``) carries no personal data: names, emails, IP
addresses and user agents live in :class:`PersonalDatum` rows, and the event keeps only
a salted SHA-256 commitment to each. Erasing a person deletes their datum rows; the chain,
computed over commitments, still verifies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TypeAlias

import attrs

__all__ = [
    "GENESIS_HASH",
    "AuditPage",
    "AuditQuery",
    "ChainRow",
    "EventRecord",
    "Outcome",
    "PersonalDatum",
    "Target",
]


#: ``prev_hash`` of the first event of every chain.
GENESIS_HASH = "0" * 64


class Outcome(enum.StrEnum):
    """Whether the recorded action succeeded."""

    SUCCESS = "success"
    FAILURE = "failure"


@attrs.frozen(slots=True)
class Target:
    """Something an action touched: ``type`` (account, team, organization...) and id."""

    type: str
    id: str


@attrs.frozen(slots=True)
class PersonalDatum:
    """One erasable personal value bound to an event by a commitment.

    ``slot`` names where it belongs (``actor.email``, ``context.ip``, ``target.0.email``);
    ``subject_id`` is the person it is about: the account id for names and emails, and
    the acting account's id for request data (IP address, user agent) of its requests;
    ``""`` when no person is known (a SCIM token's requests). Erasure matches on
    ``subject_id``. ``value`` and ``salt`` become ``None`` once erased.
    """

    event_id: str
    slot: str
    subject_id: str
    salt: str | None
    value: str | None


@attrs.frozen(slots=True)
class EventRecord:
    """One link of an organization's audit chain.

    ``scope`` is the organization id (or ``"host"`` for host-wide events such as account
    registration). ``seq`` counts from 1 per scope without gaps. ``commitments`` maps a
    personal-data slot to its salted hash. ``hash`` is SHA-256 over the canonical
    serialisation of every other field, ``prev_hash`` included.
    """

    id: str
    scope: str
    seq: int
    occurred_at: datetime
    action: str
    category: str
    outcome: Outcome
    actor_type: str
    actor_id: str
    targets: tuple[Target, ...]
    context: Mapping[str, str]
    metadata: Mapping[str, str | int | bool | None]
    commitments: Mapping[str, str]
    prev_hash: str
    hash: str


#: One event as verification reads it, a plain tuple so that reading millions of them
#: builds no objects per row: ``(seq, id, occurred_at, action, category, outcome,
#: actor_type, actor_id, targets, context, metadata, commitments, prev_hash, hash,
#: personal)`` with ``targets`` as ``(type, id)`` pairs in position order and
#: ``personal`` as ``(slot, salt, value)`` triples in slot order (``salt`` and ``value``
#: ``None`` once erased). The event's scope is the one asked for.
ChainRow: TypeAlias = tuple[
    int,
    str,
    datetime,
    str,
    str,
    str,
    str,
    str,
    tuple[tuple[str, str], ...],
    Mapping[str, str],
    Mapping[str, str | int | bool | None],
    Mapping[str, str],
    str,
    str,
    tuple[tuple[str, str | None, str | None], ...],
]


@attrs.frozen(slots=True)
class AuditQuery:
    """A neutral audit query each store compiles (SQL: indexed WHERE + keyset paging).

    Semantics every store implements alike: ``since <= occurred_at < until``;
    ``actions`` matches any of its names (empty: all); ``actor_id`` equals the event's
    actor id; ``target_id`` equals the id of any of the event's targets; ``ip`` equals
    the IP address recorded with the request (an erased address matches nothing);
    ``after_seq`` is
    the keyset cursor: only events with ``seq > after_seq`` (``seq < after_seq`` when
    ``newest_first``). Results are ordered by ``seq`` (descending when ``newest_first``).
    """

    scope: str
    since: datetime | None = None
    until: datetime | None = None
    actions: tuple[str, ...] = ()
    actor_id: str | None = None
    target_id: str | None = None
    outcome: Outcome | None = None
    ip: str | None = None
    after_seq: int | None = None
    newest_first: bool = True
    limit: int = 100


@attrs.frozen(slots=True)
class AuditPage:
    """One page of audit events with their personal data and the next cursor."""

    events: tuple[EventRecord, ...]
    personal: Mapping[str, tuple[PersonalDatum, ...]]
    next_cursor: str | None


@attrs.frozen(slots=True)
class AuditAnchor:
    """Where an organization's remaining log starts after a purge.

    Events up to ``seq`` were purged; the first remaining event links to ``prev_hash``
    (the hash of event ``seq``); ``frontier`` holds the hex roots of the perfect Merkle
    subtrees over the purged events (see ``_merkle.frontier_blocks``), so roots and proofs
    still cover them. A checkpoint of exactly ``seq`` events was recorded before the purge
    and vouches for the frontier.
    """

    scope: str
    seq: int
    prev_hash: str
    frontier: tuple[str, ...]
    recorded_at: datetime
