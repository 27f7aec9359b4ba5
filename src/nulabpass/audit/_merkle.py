"""Merkle trees over an organization's audit events, as RFC 9162 (section 2.1) defines.

Theory of operation
-------------------
Leaf ``i`` of an organization's tree is the event with sequence ``i + 1``; its leaf data
is the 32 bytes of the event's chain hash. Following RFC 9162 section 2.1.1, a leaf
hashes as SHA-256(0x00 || data), an interior node as SHA-256(0x01 || left || right), and
the tree over ``n`` leaves splits at the largest power of two smaller than ``n``.

Roots are computed incrementally with a stack of perfect subtrees (the *frontier*): each
pushed leaf merges with equal-sized subtrees on top of the stack, so at most
``log2(n) + 1`` hashes are held whatever the log's size. The frontier after ``n`` leaves
is also what survives a purge of those leaves: it lets the tree's root, and proofs for
later leaves, still be computed without them.

Proofs (RFC 9162 sections 2.1.3 and 2.1.4) are lists of subtree hashes. Which subtrees a
proof needs depends only on sizes and indexes, so :func:`inclusion_ranges` and
:func:`consistency_ranges` name them first, and :func:`subtree_hashes` computes them in a
single streaming pass over the leaves. The verifiers are the RFC's algorithms.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "MerkleAccumulator",
    "ProofUnavailable",
    "consistency_ranges",
    "frontier_blocks",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "subtree_hashes",
    "verify_consistency",
    "verify_inclusion",
]

#: Root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofUnavailable(ValueError):
    """A proof needs leaves that were purged and are not covered by the frontier."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def frontier_blocks(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``[lo, hi)`` a frontier of ``size`` leaves holds, left first."""
    blocks: list[tuple[int, int]] = []
    lo = 0
    for bit in range(size.bit_length() - 1, -1, -1):
        if size & (1 << bit):
            blocks.append((lo, lo + (1 << bit)))
            lo += 1 << bit
    return blocks


class MerkleAccumulator:
    """Computes the root of a growing tree, holding only its frontier."""

    __slots__ = ("_hashes", "_sizes", "size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        blocks = frontier_blocks(size)
        if len(blocks) != len(frontier):
            raise ValueError(f"a frontier of {size} leaves holds {len(blocks)} hashes")
        self._sizes = [hi - lo for lo, hi in blocks]
        self._hashes = list(frontier)
        self.size = size

    def push_hash(self, hashed_leaf: bytes) -> None:
        """Append a leaf given its leaf hash."""
        h, width = hashed_leaf, 1
        sizes, hashes = self._sizes, self._hashes
        while sizes and sizes[-1] == width:
            sizes.pop()
            h = node_hash(hashes.pop(), h)
            width *= 2
        sizes.append(width)
        hashes.append(h)
        self.size += 1

    def push(self, data: bytes) -> None:
        """Append a leaf given its data."""
        self.push_hash(leaf_hash(data))

    def frontier(self) -> tuple[bytes, ...]:
        """The subtree roots held, left first (see :func:`frontier_blocks`)."""
        return tuple(self._hashes)

    def root(self) -> bytes:
        """The root of the tree over every leaf pushed so far."""
        if not self._hashes:
            return EMPTY_ROOT
        h = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            h = node_hash(left, h)
        return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves, in proof order (RFC 9162 section 2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form the consistency proof between trees of ``first`` and
    ``second`` leaves, in proof order (RFC 9162 section 2.1.4.1)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second} leaves")
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    out.reverse()
    return out


def subtree_hashes(
    ranges: Iterable[tuple[int, int]],
    hashed_leaves: Iterable[bytes],
    *,
    start: int = 0,
    frontier: Sequence[bytes] = (),
) -> dict[tuple[int, int], bytes]:
    """Hash every subtree ``[lo, hi)`` of ``ranges`` in one pass over the leaves.

    ``hashed_leaves`` yields leaf hashes from index ``start`` on; leaves before ``start``
    are known only through ``frontier`` (the frontier of ``start`` leaves). A range that
    begins before ``start`` must begin at a frontier block; otherwise
    :class:`ProofUnavailable` is raised. Memory holds one frontier per open range.
    """
    wanted = sorted(set(ranges))
    blocks = frontier_blocks(start)
    if len(blocks) != len(frontier):
        raise ValueError(f"a frontier of {start} leaves holds {len(blocks)} hashes")
    result: dict[tuple[int, int], bytes] = {}
    opening: dict[int, list[tuple[int, int]]] = {}
    open_now: list[tuple[tuple[int, int], MerkleAccumulator]] = []
    for lo, hi in wanted:
        if hi <= lo:
            raise ValueError(f"empty range [{lo}, {hi})")
        if lo >= start:
            opening.setdefault(lo, []).append((lo, hi))
            continue
        seeded = [
            (b, h) for b, h in zip(blocks, frontier, strict=True) if b[0] >= lo and b[1] <= hi
        ]
        if not seeded or seeded[0][0][0] != lo or seeded[-1][0][1] != min(hi, start):
            raise ProofUnavailable(
                f"the subtree [{lo}, {hi}) needs leaves that were purged from the log"
            )
        acc = MerkleAccumulator()
        acc._sizes = [b[1] - b[0] for b, _ in seeded]
        acc._hashes = [h for _, h in seeded]
        acc.size = sum(acc._sizes)
        if lo + acc.size == hi:
            result[(lo, hi)] = acc.root()
        else:
            open_now.append(((lo, hi), acc))
    index = start
    last = max((hi for _, hi in wanted), default=0)
    for hashed in hashed_leaves:
        if index >= last:
            break
        for rng in opening.pop(index, ()):
            open_now.append((rng, MerkleAccumulator()))
        if open_now:
            still: list[tuple[tuple[int, int], MerkleAccumulator]] = []
            for rng, acc in open_now:
                acc.push_hash(hashed)
                if rng[1] == index + 1:
                    result[rng] = acc.root()
                else:
                    still.append((rng, acc))
            open_now = still
        index += 1
    missing = [r for r in wanted if r not in result]
    if missing:
        raise ProofUnavailable(f"the log has {index} leaves; the subtree {missing[0]} needs more")
    return result


def verify_inclusion(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` place ``hashed_leaf`` at ``index`` in the
    tree of ``size`` leaves whose root is ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, hashed_leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of ``first`` leaves with ``first_root`` a
    prefix of the tree of ``second`` leaves with ``second_root``?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)
