"""Merkle trees, proofs and frontiers agree with RFC 9162's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from nulabpass.audit._merkle import (
    MerkleAccumulator,
    ProofUnavailable,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    subtree_hashes,
    verify_consistency,
    verify_inclusion,
)


def _data(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written recursively as the RFC states it."""
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


sizes = st.integers(min_value=1, max_value=70)


@given(sizes)
def test_the_incremental_root_equals_the_recursive_definition(n: int) -> None:
    acc = MerkleAccumulator()
    for d in _data(n):
        acc.push(d)
    assert acc.root() == _mth(_data(n))


@given(sizes, st.data())
def test_inclusion_proofs_verify_and_reject_a_wrong_leaf_or_index(
    n: int, data: st.DataObject
) -> None:
    leaves = _data(n)
    index = data.draw(st.integers(0, n - 1))
    ranges = inclusion_ranges(index, n)
    hashes = subtree_hashes(ranges, (leaf_hash(d) for d in leaves))
    proof = [hashes[r] for r in ranges]
    root = _mth(leaves)
    assert verify_inclusion(leaf_hash(leaves[index]), index, n, proof, root)
    assert not verify_inclusion(leaf_hash(b"forged"), index, n, proof, root)
    if n > 1:
        other = (index + 1) % n
        assert not verify_inclusion(leaf_hash(leaves[index]), other, n, proof, root)


@given(sizes, st.data())
def test_consistency_proofs_verify_and_reject_a_rewritten_prefix(
    n: int, data: st.DataObject
) -> None:
    leaves = _data(n)
    m = data.draw(st.integers(1, n))
    ranges = consistency_ranges(m, n)
    hashes = subtree_hashes(ranges, (leaf_hash(d) for d in leaves))
    proof = [hashes[r] for r in ranges]
    assert verify_consistency(m, n, _mth(leaves[:m]), _mth(leaves), proof)
    rewritten = [b"x" * 32, *leaves[1:]]
    assert not verify_consistency(m, n, _mth(rewritten[:m]), _mth(leaves), proof)


@given(sizes, st.data())
def test_proofs_for_retained_leaves_survive_a_purge_through_the_frontier(
    n: int, data: st.DataObject
) -> None:
    leaves = _data(n)
    purged = data.draw(st.integers(0, n - 1))
    acc = MerkleAccumulator()
    for d in leaves[:purged]:
        acc.push(d)
    frontier = acc.frontier()
    index = data.draw(st.integers(purged, n - 1))
    ranges = [*inclusion_ranges(index, n), (0, n)]
    hashes = subtree_hashes(
        ranges, (leaf_hash(d) for d in leaves[purged:]), start=purged, frontier=frontier
    )
    assert hashes[(0, n)] == _mth(leaves)
    proof = [hashes[r] for r in inclusion_ranges(index, n)]
    assert verify_inclusion(leaf_hash(leaves[index]), index, n, proof, _mth(leaves))
    continued = MerkleAccumulator(purged, frontier)
    for d in leaves[purged:]:
        continued.push(d)
    assert continued.root() == _mth(leaves)


def test_a_proof_for_a_purged_leaf_is_unavailable() -> None:
    leaves = _data(8)
    acc = MerkleAccumulator()
    for d in leaves[:6]:
        acc.push(d)
    try:
        subtree_hashes(
            inclusion_ranges(1, 8),
            (leaf_hash(d) for d in leaves[6:]),
            start=6,
            frontier=acc.frontier(),
        )
    except ProofUnavailable:
        pass
    else:
        raise AssertionError("a proof over purged leaves was produced")
