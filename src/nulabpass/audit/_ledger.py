"""Store-side work on an organization's Merkle tree: checkpoints, proofs, verification.

Every function streams events in keyset batches, so memory stays flat as the log grows:
roots and proofs are computed with :mod:`nulabpass.audit._merkle`'s frontiers, never by
holding all leaves.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime

from nulabpass.audit._chain import ChainVerification, check_row
from nulabpass.audit._checkpoint import Checkpoint, check_checkpoint, sign_checkpoint
from nulabpass.audit._merkle import (
    MerkleAccumulator,
    ProofUnavailable,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    subtree_hashes,
)
from nulabpass.audit._model import GENESIS_HASH, AuditAnchor, AuditQuery, EventRecord
from nulabpass.audit.verifier import ConsistencyProof, InclusionProof
from nulabpass.errors import Conflict, NotFound
from nulabpass.ports import SigningKey, Store, UnitOfWork

__all__ = [
    "build_checkpoint",
    "consistency_proof",
    "events_after",
    "inclusion_proof",
    "purge_through",
    "verify_log",
]

PublicKeyLookup = Callable[[str], bytes | None]
_sha256 = hashlib.sha256


def events_after(
    uow: UnitOfWork, scope: str, after_seq: int, *, batch_size: int = 1000
) -> Iterator[EventRecord]:
    """Events of ``scope`` with ``seq > after_seq`` in order, read in keyset batches."""
    last = after_seq
    while True:
        batch = uow.audit.query(
            AuditQuery(scope=scope, after_seq=last, newest_first=False, limit=batch_size)
        )
        yield from batch
        if len(batch) < batch_size:
            return
        last = batch[-1].seq


def _leaf_data(stored_hash: str) -> bytes:
    # A leaf is the event's 32-byte hash; a stored hash that is not hex (tampered) still
    # gives a leaf, so the tree, and any checkpoint over it, stops matching.
    try:
        return binascii.unhexlify(stored_hash)
    except (binascii.Error, ValueError):
        return stored_hash.encode("utf-8")


def _hash_bytes(event: EventRecord) -> bytes:
    return _leaf_data(event.hash)


def _frontier(hexes: tuple[str, ...]) -> list[bytes]:
    return [binascii.unhexlify(h) for h in hexes]


def _start(uow: UnitOfWork, scope: str) -> tuple[AuditAnchor | None, MerkleAccumulator]:
    anchor = uow.audit_ledger.anchor(scope)
    if anchor is None:
        return None, MerkleAccumulator()
    return anchor, MerkleAccumulator(anchor.seq, _frontier(anchor.frontier))


def build_checkpoint(
    uow: UnitOfWork, scope: str, now: datetime, key: SigningKey, *, batch_size: int = 1000
) -> Checkpoint:
    """Sign a checkpoint over every event of ``scope`` now stored.

    Starts from the latest checkpoint's frontier (or the purge anchor), so each
    checkpoint reads only the events recorded since the last one. The chain links of
    those events are checked on the way: a checkpoint never vouches for a broken chain.
    """
    anchor, acc = _start(uow, scope)
    latest = uow.audit_ledger.latest_checkpoint(scope)
    prev = anchor.prev_hash if anchor is not None else GENESIS_HASH
    if latest is not None and latest.frontier and latest.tree_size > acc.size:
        acc = MerkleAccumulator(latest.tree_size, _frontier(latest.frontier))
        head = uow.audit.query(
            AuditQuery(scope=scope, after_seq=latest.tree_size - 1, newest_first=False, limit=1)
        )
        if not head or head[0].seq != latest.tree_size:
            raise Conflict(
                f"The audit log of {scope} no longer holds event {latest.tree_size}, which "
                "its last checkpoint covers; run `nulabpass audit verify`.",
                code="audit.chain_broken",
            )
        prev = head[0].hash
    expected = acc.size + 1
    for event in events_after(uow, scope, acc.size, batch_size=batch_size):
        if event.seq != expected or event.prev_hash != prev:
            raise Conflict(
                f"The audit log of {scope} is broken at event {event.seq}; a checkpoint "
                "cannot vouch for it. Run `nulabpass audit verify` to see what changed.",
                code="audit.chain_broken",
            )
        acc.push(_hash_bytes(event))
        prev = event.hash
        expected += 1
    checkpoint = sign_checkpoint(scope, acc.size, acc.root(), now, key.key_id, key.private_key)
    frontier = tuple(h.hex() for h in acc.frontier())
    checkpoint = Checkpoint(
        checkpoint.scope,
        checkpoint.tree_size,
        checkpoint.root_hash,
        checkpoint.issued_at,
        checkpoint.key_id,
        checkpoint.signature,
        frontier,
    )
    uow.audit_ledger.add_checkpoint(checkpoint)
    return checkpoint


def _leaves(uow: UnitOfWork, scope: str, after: int, batch_size: int) -> Iterator[bytes]:
    for event in events_after(uow, scope, after, batch_size=batch_size):
        yield leaf_hash(_hash_bytes(event))


def _unavailable(exc: ProofUnavailable) -> NotFound:
    return NotFound(
        f"The proof cannot be computed: {exc}. Proofs cover only events still in the log "
        "and checkpoints taken after the last purge.",
        code="audit.proof_unavailable",
    )


def inclusion_proof(
    store: Store, scope: str, seq: int, checkpoint: Checkpoint, *, batch_size: int = 1000
) -> InclusionProof:
    """Prove that event ``seq`` is in the tree of ``checkpoint``."""
    if not 1 <= seq <= checkpoint.tree_size:
        raise NotFound(
            f"Event {seq} is not covered by the checkpoint of {checkpoint.tree_size} events.",
            code="audit.proof_unavailable",
        )
    with store.snapshot() as uow:
        _, acc = _start(uow, scope)
        found = uow.audit.query(
            AuditQuery(scope=scope, after_seq=seq - 1, newest_first=False, limit=1)
        )
        if not found or found[0].seq != seq:
            raise NotFound(
                f"Event {seq} of {scope} is not in the log (purged or never recorded).",
                code="audit.proof_unavailable",
            )
        ranges = inclusion_ranges(seq - 1, checkpoint.tree_size)
        try:
            hashes = subtree_hashes(
                ranges,
                _leaves(uow, scope, acc.size, batch_size),
                start=acc.size,
                frontier=acc.frontier(),
            )
        except ProofUnavailable as exc:
            raise _unavailable(exc) from None
    return InclusionProof(
        scope=scope,
        seq=seq,
        event_hash=found[0].hash,
        path=tuple(hashes[r].hex() for r in ranges),
        checkpoint=checkpoint,
    )


def consistency_proof(
    store: Store, scope: str, first: Checkpoint, second: Checkpoint, *, batch_size: int = 1000
) -> ConsistencyProof:
    """Prove that the tree of ``first`` is a prefix of the tree of ``second``."""
    if first.tree_size < 1 or first.tree_size > second.tree_size:
        raise NotFound(
            "A consistency proof needs a non-empty first checkpoint no larger than the second.",
            code="audit.proof_unavailable",
        )
    ranges = consistency_ranges(first.tree_size, second.tree_size)
    with store.snapshot() as uow:
        _, acc = _start(uow, scope)
        try:
            hashes = subtree_hashes(
                ranges,
                _leaves(uow, scope, acc.size, batch_size),
                start=acc.size,
                frontier=acc.frontier(),
            )
        except ProofUnavailable as exc:
            raise _unavailable(exc) from None
    return ConsistencyProof(
        scope=scope, first=first, second=second, path=tuple(hashes[r].hex() for r in ranges)
    )


def verify_log(
    store: Store,
    scope: str,
    *,
    public_key: PublicKeyLookup | None = None,
    anchor: AuditAnchor | None = None,
    use_stored_anchor: bool = True,
    batch_size: int = 1000,
) -> ChainVerification:
    """Verify the chain of ``scope`` and every checkpoint stored for it, streaming.

    The chain starts at seq 1 from the genesis hash, or after ``anchor`` (by default the
    anchor a purge recorded): its ``prev_hash`` links the first remaining event and its
    frontier seeds the Merkle tree, whose root must match the checkpoint taken at the
    anchor. Each stored checkpoint's root is compared when the streamed tree reaches its
    size, and its signature is checked when ``public_key`` is given. It reads in one
    snapshot of the store, so changes made meanwhile (new events, a purge) neither wait
    for it nor show it a log that is half one state and half the other.
    """
    with store.snapshot() as uow:
        if anchor is None and use_stored_anchor:
            anchor = uow.audit_ledger.anchor(scope)
        start = 0 if anchor is None else anchor.seq
        acc = (
            MerkleAccumulator()
            if anchor is None
            else MerkleAccumulator(anchor.seq, _frontier(anchor.frontier))
        )
        run = _Run(scope, uow, start, public_key)
        if anchor is not None:
            anchored = uow.audit_ledger.get_checkpoint(scope, anchor.seq)
            if anchored is None or anchored.root_hash != acc.root().hex():
                return run.fail(
                    "audit.anchor_mismatch",
                    f"The purge anchor at event {anchor.seq} does not match a recorded "
                    "checkpoint of that size: the anchor or the checkpoint was altered.",
                    checkpoint_size=anchor.seq,
                )
        expected_seq = start + 1
        expected_prev = GENESIS_HASH if anchor is None else anchor.prev_hash
        failed = run.checkpoints_at(acc)
        if failed is not None:
            return failed
        # The loop below runs once per event of logs of millions: it works on the
        # store's plain rows and keeps its state in locals.
        next_checkpoint = run.next_size()
        push = acc.push_hash
        count = 0
        rows = uow.audit.chain_rows(scope, after_seq=start, batch_size=batch_size)
        try:
            for row in rows:
                problem = check_row(row, scope, expected_seq, expected_prev)
                if problem is not None:
                    run.count, run.head = count, (expected_seq - 1, expected_prev)
                    return run.fail(problem[0], problem[1], broken=(row[0], row[1]))
                stored = row[13]
                push(_sha256(b"\x00" + _leaf_data(stored)).digest())
                count += 1
                expected_seq, expected_prev = row[0] + 1, stored
                if next_checkpoint is not None and acc.size >= next_checkpoint:
                    run.count, run.head = count, (row[0], stored)
                    failed = run.checkpoints_at(acc)
                    if failed is not None:
                        return failed
                    next_checkpoint = run.next_size()
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        run.count, run.head = count, (expected_seq - 1, expected_prev)
        beyond = run.pending()
        if beyond is not None:
            return run.fail(
                "audit.checkpoint_beyond_log",
                f"The checkpoint of {beyond.tree_size} events signed at "
                f"{beyond.issued_at.isoformat()} covers more events than the log holds "
                f"({expected_seq - 1}): events at the end of the log were removed.",
                checkpoint_size=beyond.tree_size,
                head=(expected_seq - 1, expected_prev),
            )
    return ChainVerification(
        scope=scope,
        ok=True,
        events_checked=run.count,
        head_seq=expected_seq - 1,
        head_hash=expected_prev,
        message=f"{run.count} events and {run.checkpoints} checkpoints verified.",
        start_seq=start + 1,
        checkpoints_checked=run.checkpoints,
        signatures_checked=public_key is not None,
    )


class _Run:
    """State of one verification: counts and the next checkpoint to compare."""

    def __init__(
        self, scope: str, uow: UnitOfWork, start: int, public_key: PublicKeyLookup | None
    ) -> None:
        self.scope = scope
        self.uow = uow
        self.start = start
        self.public_key = public_key
        self.count = 0
        self.checkpoints = 0
        self._queue: list[Checkpoint] = []
        self._next_min = start
        self._exhausted = False
        self.head = (start, GENESIS_HASH)

    def _peek(self) -> Checkpoint | None:
        if not self._queue and not self._exhausted:
            page = self.uow.audit_ledger.list_checkpoints(
                self.scope, min_size=max(self._next_min, 1), limit=500
            )
            self._queue = [c for c in page if c.tree_size > self.start]
            if page:
                self._next_min = page[-1].tree_size + 1
            if len(page) < 500:
                self._exhausted = True
        return self._queue[0] if self._queue else None

    def pending(self) -> Checkpoint | None:
        return self._peek()

    def fail(
        self,
        code: str,
        message: str,
        *,
        broken: tuple[int, str] | None = None,
        checkpoint_size: int | None = None,
        head: tuple[int, str] | None = None,
    ) -> ChainVerification:
        head_seq, head_hash = head or self.head
        return ChainVerification(
            scope=self.scope,
            ok=False,
            events_checked=self.count,
            head_seq=head_seq,
            head_hash=head_hash,
            first_broken_seq=None if broken is None else broken[0],
            first_broken_id=None if broken is None else broken[1],
            problem=code,
            message=message,
            start_seq=self.start + 1,
            checkpoints_checked=self.checkpoints,
            checkpoint_size=checkpoint_size,
            signatures_checked=self.public_key is not None,
        )

    def next_size(self) -> int | None:
        """The tree size of the next checkpoint to compare, if any."""
        cp = self._peek()
        return None if cp is None else cp.tree_size

    def checkpoints_at(self, acc: MerkleAccumulator) -> ChainVerification | None:
        while (cp := self._peek()) is not None and cp.tree_size <= acc.size:
            self._queue.pop(0)
            if cp.tree_size < acc.size:
                continue
            if self.public_key is not None:
                problem = check_checkpoint(cp, self.public_key)
                if problem is not None:
                    return self.fail(problem.code, problem.message, checkpoint_size=cp.tree_size)
            if cp.root_hash != acc.root().hex():
                return self.fail(
                    "audit.checkpoint_mismatch",
                    f"The checkpoint of {cp.tree_size} events signed at "
                    f"{cp.issued_at.isoformat()} does not match the log: an event up to "
                    f"sequence {cp.tree_size} was changed, removed, inserted or reordered "
                    "and the chain rewritten to hide it.",
                    checkpoint_size=cp.tree_size,
                )
            self.checkpoints += 1
        return None


def purge_through(
    uow: UnitOfWork, scope: str, through: int, now: datetime, key: SigningKey
) -> AuditAnchor | None:
    """Prepare purging the events of ``scope`` up to ``through``: sign a checkpoint over
    exactly those events and record the anchor the remaining log will start from.

    Returns the new anchor, or ``None`` when nothing beyond the current anchor is old
    enough. The caller deletes the events in the same transaction.
    """
    anchor, acc = _start(uow, scope)
    if through <= acc.size:
        return None
    prev = anchor.prev_hash if anchor is not None else GENESIS_HASH
    for event in events_after(uow, scope, acc.size):
        if event.seq > through:
            break
        if event.seq != acc.size + 1 or event.prev_hash != prev:
            raise Conflict(
                f"The audit log of {scope} is broken at event {event.seq}; purging would "
                "hide it. Run `nulabpass audit verify` to see what changed.",
                code="audit.chain_broken",
            )
        acc.push(_hash_bytes(event))
        prev = event.hash
    if acc.size != through:
        raise Conflict(
            f"The audit log of {scope} ends before event {through}.", code="audit.chain_broken"
        )
    signed = sign_checkpoint(scope, through, acc.root(), now, key.key_id, key.private_key)
    frontier = tuple(h.hex() for h in acc.frontier())
    uow.audit_ledger.add_checkpoint(
        Checkpoint(
            signed.scope,
            signed.tree_size,
            signed.root_hash,
            signed.issued_at,
            signed.key_id,
            signed.signature,
            frontier,
        )
    )
    new = AuditAnchor(scope=scope, seq=through, prev_hash=prev, frontier=frontier, recorded_at=now)
    uow.audit_ledger.put_anchor(new)
    return new
