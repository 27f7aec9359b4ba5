"""Opaque identifiers: random ones, and time-ordered ones for append-mostly indexes."""

from __future__ import annotations

import re

import pytest

from nulabpass import _ids

SHAPE = re.compile(r"evt_[0-9a-f]{24}")


def test_random_and_ordered_ids_share_one_shape() -> None:
    assert SHAPE.fullmatch(_ids.new_id("evt"))
    assert SHAPE.fullmatch(_ids.new_ordered_id("evt"))


def test_ordered_ids_sort_by_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids made in later milliseconds sort after earlier ones, whatever their random
    tails; ids of one millisecond still differ."""
    now = [1_764_800_000_000_000_000]

    def time_ns() -> int:
        now[0] += 1_000_000
        return now[0]

    monkeypatch.setattr(_ids.time, "time_ns", time_ns)
    made = [_ids.new_ordered_id("evt") for _ in range(500)]
    assert made == sorted(made)
    monkeypatch.setattr(_ids.time, "time_ns", lambda: now[0])
    same_ms = {_ids.new_ordered_id("evt") for _ in range(500)}
    assert len(same_ms) == 500
    assert len({i[:16] for i in same_ms}) == 1
