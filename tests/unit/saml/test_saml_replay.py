"""The replay cache accepts an assertion once, until it expires."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nulabpass.ports import SamlReplayCache
from nulabpass.saml import MemoryReplayCache, SamlPolicy, SamlValidationError, record_assertion

from .conftest import NOW, Build, Validate


def test_memory_cache_implements_the_port() -> None:
    assert isinstance(MemoryReplayCache(), SamlReplayCache)


def test_a_key_is_remembered_until_it_expires() -> None:
    cache = MemoryReplayCache()
    later = NOW + timedelta(minutes=5)
    assert cache.remember("a", expires_at=later, now=NOW) is True
    assert cache.remember("a", expires_at=later, now=NOW + timedelta(minutes=4)) is False
    assert cache.remember("a", expires_at=later + timedelta(minutes=5), now=later) is True


def test_a_full_cache_refuses_rather_than_forgetting_unexpired_keys() -> None:
    cache = MemoryReplayCache(max_entries=1)
    assert cache.remember("a", expires_at=NOW + timedelta(minutes=1), now=NOW)
    assert not cache.remember("b", expires_at=NOW + timedelta(minutes=1), now=NOW)
    assert cache.remember(
        "b", expires_at=NOW + timedelta(minutes=3), now=NOW + timedelta(minutes=2)
    )


def test_the_same_assertion_is_accepted_once(
    build: Build, validate: Validate, policy: SamlPolicy
) -> None:
    cache = MemoryReplayCache()
    xml = build()
    record_assertion(cache, validate(xml), policy=policy, now=NOW)
    with pytest.raises(SamlValidationError) as info:
        record_assertion(cache, validate(xml), policy=policy, now=NOW + timedelta(seconds=1))
    assert info.value.code == "saml.replay"


def test_distinct_assertions_are_each_accepted(
    build: Build, validate: Validate, policy: SamlPolicy
) -> None:
    cache = MemoryReplayCache()
    record_assertion(cache, validate(build()), policy=policy, now=NOW)
    record_assertion(cache, validate(build()), policy=policy, now=NOW)
