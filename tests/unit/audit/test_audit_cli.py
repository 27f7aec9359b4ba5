"""``nulabpass audit checkpoint|verify|export``: signed checkpoints from the command line,
verification that names a rewritten chain, and exports a recipient verifies offline."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from nulabpass import Actor, NulabPass
from nulabpass.audit._chain import event_hash
from nulabpass.audit._service import verify_chain
from nulabpass.audit.keys import StaticKeyProvider, key_id_of, public_key_of
from nulabpass.audit.verifier import verify_export
from nulabpass.cli import main
from nulabpass.stores.sql import SqlStore, schema
from nulabpass.testing import make_config

SEED = bytes(range(32))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, str, Path]:
    url = f"sqlite:///{tmp_path / 'np.sqlite3'}"
    store = SqlStore.from_url(url)
    store.upgrade()
    np = NulabPass(store, config=make_config(), keys=StaticKeyProvider(SEED))
    founder = np.accounts.register("founder@partner.test", "Founder")
    org = np.orgs.create(Actor.account(founder.id), "Acme")
    np.plans.start_trial(Actor.account(founder.id), org.id)
    np.teams.create(Actor.account(founder.id), org.id, "Ops")
    store.dispose()
    key_file = tmp_path / "signing.key"
    key_file.write_text(SEED.hex() + "\n")
    return url, org.id, key_file


def _run(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, object]]]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.strip()]


def _public() -> str:
    public = public_key_of(SEED)
    return f"{key_id_of(public)}={public.hex()}"


def test_checkpoint_then_verify_with_the_public_key(
    setup: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, org, key_file = setup
    code, out = _run(
        ["audit", "checkpoint", "--db", url, org, "--signing-key", str(key_file)], capsys
    )
    assert code == 0
    assert out[0]["tree_size"] == 3
    code, out = _run(["audit", "verify", "--db", url, org, "--public-key", _public()], capsys)
    assert code == 0
    assert (out[0]["ok"], out[0]["checkpoints_checked"], out[0]["signatures_checked"]) == (
        True,
        1,
        True,
    )
    other = public_key_of(bytes(32)).hex()
    code, out = _run(["audit", "verify", "--db", url, org, "--public-key", other], capsys)
    assert (code, out[0]["problem"]) == (1, "audit.checkpoint_unknown_key")


def test_verify_names_a_chain_rewritten_under_a_checkpoint(
    setup: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, org, key_file = setup
    main(["audit", "checkpoint", "--db", url, org, "--signing-key", str(key_file)])
    capsys.readouterr()
    store = SqlStore.from_url(url)
    with store.transaction() as uow:
        events = list(uow.audit.iter_chain(org))
    store.dispose()
    engine = sa.create_engine(url)
    e = schema.audit_events
    with engine.begin() as conn:
        # Rename the team event and recompute every hash after it: the chain alone looks
        # sound, only the signed checkpoint can tell.
        prev = events[1].hash
        for original in events[2:]:
            renamed = (
                attrs.evolve(original, action="team.deleted") if original.seq == 3 else original
            )
            linked = attrs.evolve(renamed, prev_hash=prev)
            event = attrs.evolve(linked, hash=event_hash(linked))
            conn.execute(
                sa.update(e)
                .where(e.c.id == event.id)
                .values(action=event.action, prev_hash=event.prev_hash, hash=event.hash)
            )
            prev = event.hash
    engine.dispose()
    code, out = _run(["audit", "verify", "--db", url, org], capsys)
    assert (code, out[0]["problem"], out[0]["checkpoint_size"]) == (
        1,
        "audit.checkpoint_mismatch",
        3,
    )
    assert out[0]["signatures_checked"] is False


def test_export_writes_a_file_and_a_manifest_a_recipient_verifies(
    setup: tuple[str, str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, org, key_file = setup
    target = tmp_path / "audit.jsonl"
    code, out = _run(
        [
            "audit",
            "export",
            "--db",
            url,
            org,
            "--format",
            "jsonl",
            "--out",
            str(target),
            "--signing-key",
            str(key_file),
        ],
        capsys,
    )
    assert code == 0
    assert out[0]["events"] == 3
    manifest = json.loads(Path(str(out[0]["manifest"])).read_text())
    public = public_key_of(SEED)
    result = verify_export([target.read_bytes()], manifest, {key_id_of(public): public})
    assert (result.count, result.events_rechecked) == (3, True)
    store = SqlStore.from_url(url)
    try:
        assert verify_chain(store, org).ok
    finally:
        store.dispose()


def test_a_malformed_key_file_is_reported(
    setup: tuple[str, str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, org, _ = setup
    bad = tmp_path / "bad.key"
    bad.write_text("not hex")
    code = main(["audit", "checkpoint", "--db", url, org, "--signing-key", str(bad)])
    assert code == 3
    assert "audit.invalid_key_file" in capsys.readouterr().err
