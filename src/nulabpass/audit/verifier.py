"""Offline verification of audit checkpoints, proofs and exports.

Everything here is pure: it needs the material a recipient was given (a checkpoint, a
proof, an export file and its manifest) and the organization's Ed25519 public keys, by key
id. No store, no clock, no network. Verifiers raise :class:`AuditVerificationError` with
a stable code and return only what was verified.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nulabpass.audit._chain import check_event, format_time
from nulabpass.audit._checkpoint import Checkpoint, check_checkpoint
from nulabpass.audit._merkle import leaf_hash, verify_consistency, verify_inclusion
from nulabpass.audit._model import EventRecord, Outcome, PersonalDatum, Target
from nulabpass.errors import InvalidInput

__all__ = [
    "MANIFEST_FORMAT",
    "AuditVerificationError",
    "ConsistencyProof",
    "ExportVerification",
    "InclusionProof",
    "PublicKeys",
    "event_from_json",
    "event_to_json",
    "manifest_bytes",
    "verify_checkpoint",
    "verify_consistency_proof",
    "verify_export",
    "verify_inclusion_proof",
]

#: ``format`` of an export manifest.
MANIFEST_FORMAT = "nulabpass.audit.export-manifest.v1"

#: Public keys by key id: a mapping or a lookup function (``None``: unknown key).
PublicKeys = Mapping[str, bytes] | Callable[[str], bytes | None]


class AuditVerificationError(InvalidInput):
    """Audit material failed verification; ``code`` says how."""

    default_code = "audit.verification_failed"


def _lookup(keys: PublicKeys) -> Callable[[str], bytes | None]:
    if callable(keys):
        return keys
    return keys.get


def _unhex(value: str, what: str) -> bytes:
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise AuditVerificationError(
            f"The {what} is not hexadecimal.", code="audit.malformed_proof"
        ) from None


def verify_checkpoint(checkpoint: Checkpoint, keys: PublicKeys) -> Checkpoint:
    """Check a checkpoint's signature with the public key its key id names."""
    problem = check_checkpoint(checkpoint, _lookup(keys))
    if problem is not None:
        raise AuditVerificationError(problem.message, code=problem.code)
    return checkpoint


@attrs.frozen(slots=True)
class InclusionProof:
    """Event ``seq`` (hash ``event_hash``) is leaf ``seq - 1`` of ``checkpoint``'s tree;
    ``path`` lists the hex sibling hashes of RFC 9162 section 2.1.3."""

    scope: str
    seq: int
    event_hash: str
    path: tuple[str, ...]
    checkpoint: Checkpoint

    def to_json(self) -> dict[str, Any]:
        """JSON values of the proof."""
        return {
            "scope": self.scope,
            "seq": self.seq,
            "event_hash": self.event_hash,
            "path": list(self.path),
            "checkpoint": self.checkpoint.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InclusionProof:
        """Parse :meth:`to_json` output."""
        try:
            return cls(
                scope=str(data["scope"]),
                seq=int(data["seq"]),
                event_hash=str(data["event_hash"]),
                path=tuple(str(p) for p in data["path"]),
                checkpoint=Checkpoint.from_json(data["checkpoint"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditVerificationError(
                f"Not an inclusion proof: {exc}", code="audit.malformed_proof"
            ) from None


@attrs.frozen(slots=True)
class ConsistencyProof:
    """The tree of ``first`` is a prefix of the tree of ``second`` (RFC 9162 2.1.4)."""

    scope: str
    first: Checkpoint
    second: Checkpoint
    path: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON values of the proof."""
        return {
            "scope": self.scope,
            "first": self.first.to_json(),
            "second": self.second.to_json(),
            "path": list(self.path),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        """Parse :meth:`to_json` output."""
        try:
            return cls(
                scope=str(data["scope"]),
                first=Checkpoint.from_json(data["first"]),
                second=Checkpoint.from_json(data["second"]),
                path=tuple(str(p) for p in data["path"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditVerificationError(
                f"Not a consistency proof: {exc}", code="audit.malformed_proof"
            ) from None


def verify_inclusion_proof(proof: InclusionProof, keys: PublicKeys) -> None:
    """Check the checkpoint's signature and that the event is in its tree."""
    cp = verify_checkpoint(proof.checkpoint, keys)
    if cp.scope != proof.scope:
        raise AuditVerificationError(
            "The proof and its checkpoint belong to different organizations.",
            code="audit.inclusion_invalid",
        )
    ok = verify_inclusion(
        leaf_hash(_unhex(proof.event_hash, "event hash")),
        proof.seq - 1,
        cp.tree_size,
        [_unhex(p, "proof hash") for p in proof.path],
        _unhex(cp.root_hash, "root hash"),
    )
    if not ok:
        raise AuditVerificationError(
            f"Event {proof.seq} with hash {proof.event_hash} is not in the signed log of "
            f"{cp.tree_size} events: the event or the proof was altered.",
            code="audit.inclusion_invalid",
        )


def verify_consistency_proof(proof: ConsistencyProof, keys: PublicKeys) -> None:
    """Check both checkpoints' signatures and that the older log is a prefix of the newer:
    nothing recorded before the first checkpoint was changed, removed or reordered."""
    first = verify_checkpoint(proof.first, keys)
    second = verify_checkpoint(proof.second, keys)
    if not first.scope == second.scope == proof.scope:
        raise AuditVerificationError(
            "The checkpoints belong to different organizations.",
            code="audit.consistency_invalid",
        )
    ok = verify_consistency(
        first.tree_size,
        second.tree_size,
        _unhex(first.root_hash, "root hash"),
        _unhex(second.root_hash, "root hash"),
        [_unhex(p, "proof hash") for p in proof.path],
    )
    if not ok:
        raise AuditVerificationError(
            f"The log of {second.tree_size} events does not extend the log of "
            f"{first.tree_size} events: history before the first checkpoint was rewritten.",
            code="audit.consistency_invalid",
        )


# -- events as JSON (JSON Lines exports) --------------------------------------------------


def event_to_json(event: EventRecord, personal: Iterable[PersonalDatum]) -> dict[str, Any]:
    """An event with everything needed to recompute its hash, plus its personal data
    (value and salt, so commitments can be checked; erased values are absent)."""
    return {
        "id": event.id,
        "scope": event.scope,
        "seq": event.seq,
        "occurred_at": format_time(event.occurred_at),
        "action": event.action,
        "category": event.category,
        "outcome": event.outcome.value,
        "actor": {"type": event.actor_type, "id": event.actor_id},
        "targets": [{"type": t.type, "id": t.id} for t in event.targets],
        "context": dict(event.context),
        "metadata": dict(event.metadata),
        "commitments": dict(event.commitments),
        "personal": {
            d.slot: {"value": d.value, "salt": d.salt, "subject": d.subject_id}
            for d in personal
            if d.value is not None and d.salt is not None
        },
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def event_from_json(data: Mapping[str, Any]) -> tuple[EventRecord, tuple[PersonalDatum, ...]]:
    """Parse :func:`event_to_json` output back into an event and its personal data."""
    try:
        event = EventRecord(
            id=str(data["id"]),
            scope=str(data["scope"]),
            seq=int(data["seq"]),
            occurred_at=datetime.fromisoformat(str(data["occurred_at"]).replace("Z", "+00:00")),
            action=str(data["action"]),
            category=str(data["category"]),
            outcome=Outcome(data["outcome"]),
            actor_type=str(data["actor"]["type"]),
            actor_id=str(data["actor"]["id"]),
            targets=tuple(Target(str(t["type"]), str(t["id"])) for t in data["targets"]),
            context=dict(data["context"]),
            metadata=dict(data["metadata"]),
            commitments=dict(data["commitments"]),
            prev_hash=str(data["prev_hash"]),
            hash=str(data["hash"]),
        )
        personal = tuple(
            PersonalDatum(event.id, slot, str(v.get("subject", "")), v["salt"], v["value"])
            for slot, v in sorted(dict(data.get("personal", {})).items())
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditVerificationError(
            f"An exported event is malformed: {exc}", code="audit.malformed_export"
        ) from None
    return event, personal


# -- export manifests --------------------------------------------------------------------------


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a manifest's signature covers: canonical JSON without ``signature``."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@attrs.frozen(slots=True)
class ExportVerification:
    """What a verified export proves: events ``first_seq``..``last_seq`` of ``scope``,
    ``count`` of them, belong to the signed log of ``checkpoint``."""

    scope: str
    file_format: str
    first_seq: int | None
    last_seq: int | None
    count: int
    checkpoint: Checkpoint
    events_rechecked: bool


def verify_export(
    chunks: Iterable[bytes], manifest: Mapping[str, Any], keys: PublicKeys
) -> ExportVerification:
    """Verify an export file (``chunks``: its bytes, streamed) against its manifest.

    Checks the manifest's and the checkpoint's signatures, the file's SHA-256, the
    inclusion of the first and last exported events in the checkpoint's tree and, for
    JSON Lines, every event: its hash, its link to the one before and its personal data.
    Memory stays flat: the file is read once, line by line.
    """
    if manifest.get("format") != MANIFEST_FORMAT:
        raise AuditVerificationError(
            "This is not a nulabpass audit export manifest.", code="audit.malformed_export"
        )
    try:
        checkpoint = Checkpoint.from_json(manifest["checkpoint"])
        scope = str(manifest["scope"])
        count = int(manifest["count"])
        file_format = str(manifest["file_format"])
        first_seq = manifest["first_seq"]
        last_seq = manifest["last_seq"]
        key_id = str(manifest["key_id"])
        signature = _unhex(str(manifest["signature"]), "manifest signature")
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditVerificationError(
            f"The export manifest is malformed: {exc}", code="audit.malformed_export"
        ) from None
    raw_key = _lookup(keys)(key_id)
    try:
        if raw_key is None:
            raise InvalidSignature
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, manifest_bytes(manifest))
    except (InvalidSignature, ValueError):
        raise AuditVerificationError(
            f"The export manifest's signature (key {key_id!r}) does not verify: the "
            "manifest was altered or the key is not the organization's.",
            code="audit.manifest_signature_invalid",
        ) from None
    verify_checkpoint(checkpoint, keys)
    if checkpoint.scope != scope:
        raise AuditVerificationError(
            "The manifest and its checkpoint belong to different organizations.",
            code="audit.malformed_export",
        )
    if count:
        for end, seq in (("first", first_seq), ("last", last_seq)):
            proof = InclusionProof(
                scope=scope,
                seq=int(seq),
                event_hash=str(manifest[f"{end}_event_hash"]),
                path=tuple(manifest["inclusion"][end]),
                checkpoint=checkpoint,
            )
            verify_inclusion_proof(proof, keys)
    rechecker = _JsonLinesChecker(manifest) if file_format == "jsonl" else None
    digest = hashlib.sha256()
    pending = b""
    for chunk in chunks:
        digest.update(chunk)
        if rechecker is not None:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                rechecker.line(line)
    if rechecker is not None and pending:
        rechecker.line(pending)
    if not hmac.compare_digest(digest.hexdigest(), str(manifest.get("file_sha256", ""))):
        raise AuditVerificationError(
            "The export file does not match its manifest: it was changed after export.",
            code="audit.export_file_mismatch",
        )
    if rechecker is not None:
        rechecker.finish()
    return ExportVerification(
        scope=scope,
        file_format=file_format,
        first_seq=None if first_seq is None else int(first_seq),
        last_seq=None if last_seq is None else int(last_seq),
        count=count,
        checkpoint=checkpoint,
        events_rechecked=rechecker is not None,
    )


class _JsonLinesChecker:
    """Re-verifies a JSON Lines export event by event against its manifest."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self._count = int(manifest["count"])
        self._first_seq = manifest["first_seq"]
        self._first_hash = manifest.get("first_event_hash")
        self._last_hash = manifest.get("last_event_hash")
        self._scope = str(manifest["scope"])
        self._seen = 0
        self._expected_seq = int(self._first_seq) if self._first_seq is not None else 0
        self._prev: str | None = None
        self._last: str | None = None

    def line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            data = json.loads(raw)
        except ValueError:
            raise AuditVerificationError(
                f"Line {self._seen + 1} of the export is not JSON.", code="audit.malformed_export"
            ) from None
        event, personal = event_from_json(data)
        if self._seen == 0:
            if event.hash != self._first_hash:
                raise AuditVerificationError(
                    f"The export's first event {event.id} is not the one its manifest "
                    "names: events were removed or inserted at the start.",
                    code="audit.export_event_mismatch",
                )
            self._prev = event.prev_hash
        expected_prev = self._prev if self._prev is not None else event.prev_hash
        problem = check_event(event, self._expected_seq, expected_prev, personal)
        if problem is not None or event.scope != self._scope:
            code, message = problem or ("audit.export_event_mismatch", "wrong organization")
            raise AuditVerificationError(message, code=code)
        self._seen += 1
        self._expected_seq = event.seq + 1
        self._prev = event.hash
        self._last = event.hash

    def finish(self) -> None:
        if self._seen != self._count or (self._count and self._last != self._last_hash):
            raise AuditVerificationError(
                f"The export holds {self._seen} events where its manifest says "
                f"{self._count}, or its last event is not the one the manifest names.",
                code="audit.export_event_mismatch",
            )
