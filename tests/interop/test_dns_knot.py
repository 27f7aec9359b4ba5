"""Domain verification against a real authoritative DNS server (Knot DNS) on loopback.

One knotd serves ``verify.test`` and ``other.test`` and fails to load ``broken.test``
(SERVFAIL); names outside them are REFUSED. A second knotd, serving a different
``verify.test``, plays a resolver that disagrees. Each test works under its own name.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import timedelta

import dns.flags
import dns.message
import dns.query
import pytest

from nulabpass import Actor, NulabPass
from nulabpass._domains_service import check_txt
from nulabpass.cli import main
from nulabpass.domains import (
    DnsPythonTxtResolver,
    DomainPolicy,
    LookupStatus,
    Outcome,
)
from nulabpass.errors import Conflict, InvalidInput
from nulabpass.org._model import DomainStatus
from nulabpass.testing import make_nulabpass

from .knot_server import KnotServer, free_port, require_knot

require_knot()

POLICY = DomainPolicy()
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def knot() -> Iterator[KnotServer]:
    server = KnotServer({"verify.test": "", "other.test": ""}, broken=["broken.test"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def knot_b() -> Iterator[KnotServer]:
    server = KnotServer({"verify.test": ""})
    server.start()
    yield server
    server.stop()


def resolver(server: KnotServer, *, timeout: float = 1.0) -> DnsPythonTxtResolver:
    return DnsPythonTxtResolver([server.address], timeout=timeout, lifetime=timeout * 2)


def challenge(label: str) -> str:
    return f"{POLICY.record_label}.{label}.verify.test."


def check(server: KnotServer, label: str, proof: str = "tok") -> tuple[Outcome, LookupStatus]:
    result = check_txt([resolver(server)], challenge(label), POLICY.record_value(proof))
    return result.verdict, result.results[0].status


# -- answers as the DNS gives them --------------------------------------------------------


def test_the_record_at_the_challenge_name_verifies(knot: KnotServer) -> None:
    knot.set_txt("verify.test", challenge("plain"), "nulabpass-verification=tok")
    assert check(knot, "plain") == (Outcome.VERIFIED, LookupStatus.ANSWER)
    assert check(knot, "plain", "other")[0] is Outcome.WRONG_VALUE


def test_the_token_among_spf_records_verifies(knot: KnotServer) -> None:
    knot.set_txt(
        "verify.test",
        challenge("spf"),
        "v=spf1 include:_spf.example.test -all",
        "nulabpass-verification=tok",
        "v=spf1 ip4:192.0.2.0/24 ~all",
    )
    assert check(knot, "spf")[0] is Outcome.VERIFIED


def test_one_matching_record_among_several_verifies(knot: KnotServer) -> None:
    knot.set_txt(
        "verify.test",
        challenge("several"),
        "nulabpass-verification=old",
        "nulabpass-verification=tok",
        "google-site-verification=xyz",
    )
    assert check(knot, "several")[0] is Outcome.VERIFIED


def test_a_value_split_into_255_byte_strings_is_joined_and_compared_whole(
    knot: KnotServer,
) -> None:
    token = "t" * 700
    value = POLICY.record_value(token)
    strings = [value[i : i + 255] for i in range(0, len(value), 255)]
    assert len(strings) == 3
    knot.set_txt("verify.test", challenge("split"), strings)
    assert check(knot, "split", token)[0] is Outcome.VERIFIED
    assert check(knot, "split", token[:-1] + "u")[0] is Outcome.WRONG_VALUE
    assert check(knot, "split", token[:-1])[0] is Outcome.WRONG_VALUE


def test_a_truncated_udp_answer_is_retried_over_tcp(knot: KnotServer) -> None:
    noise = [f"unrelated-record-{i:03d}-" + "x" * 40 for i in range(60)]
    knot.set_txt("verify.test", challenge("big"), *noise, "nulabpass-verification=tok")
    query = dns.message.make_query(challenge("big"), "TXT", use_edns=0, payload=1232)
    udp = dns.query.udp(query, "127.0.0.1", port=knot.port, timeout=2)
    assert udp.flags & dns.flags.TC, "the answer must not fit in UDP for this test to mean much"
    assert check(knot, "big")[0] is Outcome.VERIFIED


def test_a_cname_within_the_zone_is_followed(knot: KnotServer) -> None:
    knot.change("verify.test", ("set", challenge("cname-in"), "CNAME", "proof-in.verify.test."))
    knot.set_txt("verify.test", "proof-in.verify.test.", "nulabpass-verification=tok")
    result = check_txt([resolver(knot)], challenge("cname-in"), "nulabpass-verification=tok")
    assert result.verdict is Outcome.VERIFIED
    assert result.results[0].chain == ("proof-in.verify.test",)


def test_a_cname_into_another_zone_is_followed(knot: KnotServer) -> None:
    knot.change("verify.test", ("set", challenge("cname-out"), "CNAME", "proof.other.test."))
    knot.set_txt("other.test", "proof.other.test.", "nulabpass-verification=tok")
    result = check_txt([resolver(knot)], challenge("cname-out"), "nulabpass-verification=tok")
    assert result.verdict is Outcome.VERIFIED
    assert result.results[0].chain == ("proof.other.test",)


def test_a_cname_to_a_missing_name_is_absent(knot: KnotServer) -> None:
    knot.change("verify.test", ("set", challenge("cname-nx"), "CNAME", "gone.other.test."))
    assert check(knot, "cname-nx") == (Outcome.ABSENT, LookupStatus.NXDOMAIN)


def test_a_cname_loop_is_indeterminate(knot: KnotServer) -> None:
    knot.change(
        "verify.test",
        ("set", challenge("loop"), "CNAME", "loop-a.other.test."),
    )
    knot.change(
        "other.test",
        ("set", "loop-a.other.test.", "CNAME", "loop-b.verify.test."),
    )
    knot.change(
        "verify.test",
        ("set", "loop-b.verify.test.", "CNAME", "loop-a.other.test."),
    )
    result = check_txt([resolver(knot)], challenge("loop"), "nulabpass-verification=tok")
    assert result.verdict is Outcome.INDETERMINATE
    assert result.results[0].status is LookupStatus.ERROR
    assert "loop" in result.results[0].detail


def test_a_name_that_does_not_exist_is_absent(knot: KnotServer) -> None:
    assert check(knot, "never-published") == (Outcome.ABSENT, LookupStatus.NXDOMAIN)


def test_a_name_without_txt_records_is_absent(knot: KnotServer) -> None:
    knot.change("verify.test", ("set", challenge("no-txt"), "A", "192.0.2.10"))
    assert check(knot, "no-txt") == (Outcome.ABSENT, LookupStatus.NODATA)


def test_a_zone_that_failed_to_load_is_indeterminate_servfail(knot: KnotServer) -> None:
    result = check_txt(
        [resolver(knot)], f"{POLICY.record_label}.acme.broken.test", "nulabpass-verification=t"
    )
    assert result.verdict is Outcome.INDETERMINATE
    assert result.results[0].status is LookupStatus.SERVFAIL


def test_a_refused_query_is_indeterminate(knot: KnotServer) -> None:
    result = check_txt(
        [resolver(knot)], f"{POLICY.record_label}.acme.elsewhere.test", "nulabpass-verification=t"
    )
    assert result.verdict is Outcome.INDETERMINATE
    assert result.results[0].status is LookupStatus.REFUSED


def test_a_server_that_is_not_listening_times_out_indeterminate() -> None:
    silent = DnsPythonTxtResolver([("127.0.0.1", free_port())], timeout=0.3, lifetime=0.6)
    result = check_txt([silent], challenge("any"), "nulabpass-verification=tok")
    assert result.verdict is Outcome.INDETERMINATE
    assert result.results[0].status in (LookupStatus.TIMEOUT, LookupStatus.ERROR)


def test_a_stopped_server_times_out_indeterminate(knot: KnotServer) -> None:
    knot.set_txt("verify.test", challenge("frozen"), "nulabpass-verification=tok")
    knot.freeze()
    try:
        result = check_txt(
            [resolver(knot, timeout=0.3)], challenge("frozen"), "nulabpass-verification=tok"
        )
    finally:
        knot.thaw()
    assert result.verdict is Outcome.INDETERMINATE
    assert result.results[0].status is LookupStatus.TIMEOUT
    assert check(knot, "frozen")[0] is Outcome.VERIFIED


def test_two_servers_that_disagree_do_not_verify(knot: KnotServer, knot_b: KnotServer) -> None:
    knot.set_txt("verify.test", challenge("split-brain"), "nulabpass-verification=tok")
    knot_b.set_txt("verify.test", challenge("split-brain"), "nulabpass-verification=other")
    both = [resolver(knot), resolver(knot_b)]
    result = check_txt(both, challenge("split-brain"), "nulabpass-verification=tok")
    assert [r.outcome for r in result.results] == [Outcome.VERIFIED, Outcome.WRONG_VALUE]
    assert result.verdict is Outcome.WRONG_VALUE
    knot_b.set_txt("verify.test", challenge("split-brain"), "nulabpass-verification=tok")
    assert check_txt(both, challenge("split-brain"), "nulabpass-verification=tok").verified


# -- the facade on real DNS ---------------------------------------------------------------


class Org:
    """An organization with a trial whose checks go to the given servers."""

    def __init__(self, np: NulabPass, name: str) -> None:
        self.np = np
        account = np.accounts.register(f"admin@{name}.partner.test", "Admin")
        self.admin = Actor.account(account.id)
        self.id = np.orgs.create(self.admin, name).id
        np.plans.start_trial(self.admin, self.id)


def facade(*servers: KnotServer, timeout: float = 1.0) -> NulabPass:
    return make_nulabpass(resolver=[resolver(s, timeout=timeout) for s in servers])


def add_and_publish(org: Org, knot: KnotServer, label: str) -> tuple[str, str]:
    view = org.np.domains.add(org.admin, org.id, f"{label}.verify.test")
    assert view.record_value is not None
    knot.set_txt("verify.test", view.record_name + ".", view.record_value)
    return view.name, view.record_value


def test_a_domain_is_verified_through_real_dns(knot: KnotServer) -> None:
    np = facade(knot)
    org = Org(np, "acme")
    name, _ = add_and_publish(org, knot, "f-verify")
    check = np.domains.verify(org.admin, org.id, name)
    assert check.verified
    assert check.domain.status is DomainStatus.VERIFIED


def test_a_record_removed_then_restored_within_grace_changes_nothing(knot: KnotServer) -> None:
    np = facade(knot)
    org = Org(np, "acme")
    name, value = add_and_publish(org, knot, "f-restore")
    assert np.domains.verify(org.admin, org.id, name).verified
    record = POLICY.record_name(name) + "."
    knot.change("verify.test", ("unset", record, "TXT"))
    np.clock.advance(2 * DAY)
    assert np.domains.reverify_due().record_missing == 1
    knot.set_txt("verify.test", record, value)
    np.clock.advance(5 * DAY)
    report = np.domains.reverify_due()
    assert report.restored == 1
    np.clock.advance(20 * DAY)
    assert np.domains.reverify_due().lapsed == 0
    assert np.domains.get(org.admin, org.id, name).status is DomainStatus.VERIFIED


def test_a_record_removed_past_grace_unverifies_the_domain(knot: KnotServer) -> None:
    np = facade(knot)
    org = Org(np, "acme")
    name, _ = add_and_publish(org, knot, "f-lapse")
    assert np.domains.verify(org.admin, org.id, name).verified
    knot.change("verify.test", ("unset", POLICY.record_name(name) + ".", "TXT"))
    np.clock.advance(2 * DAY)
    np.domains.reverify_due()
    np.clock.advance(13 * DAY)
    assert np.domains.reverify_due().lapsed == 0
    np.clock.advance(DAY)
    assert np.domains.reverify_due().lapsed == 1
    assert np.domains.get(org.admin, org.id, name).status is DomainStatus.UNVERIFIED


def test_indeterminate_past_grace_counts_as_absent_never_sooner(knot: KnotServer) -> None:
    np = facade(knot, timeout=0.3)
    org = Org(np, "acme")
    name, _ = add_and_publish(org, knot, "f-indeterminate")
    assert np.domains.verify(org.admin, org.id, name).verified
    knot.freeze()
    try:
        np.clock.advance(2 * DAY)
        first = np.domains.reverify_due()
        assert first.indeterminate == 1
        assert first.record_missing == 0
        np.clock.advance(13 * DAY)
        assert np.domains.reverify_due().record_missing == 0
        assert np.domains.get(org.admin, org.id, name).status is DomainStatus.VERIFIED
        np.clock.advance(DAY)
        assert np.domains.reverify_due().record_missing == 1
        np.clock.advance(14 * DAY)
        assert np.domains.reverify_due().lapsed == 1
    finally:
        knot.thaw()
    assert np.domains.get(org.admin, org.id, name).status is DomainStatus.UNVERIFIED


def test_an_expired_challenge_does_not_verify_even_with_the_record_published(
    knot: KnotServer,
) -> None:
    np = facade(knot)
    org = Org(np, "acme")
    name, _ = add_and_publish(org, knot, "f-expired")
    np.clock.advance(7 * DAY)
    with pytest.raises(Conflict) as info:
        np.domains.verify(org.admin, org.id, name)
    assert info.value.code == "domain.challenge_expired"


def test_public_suffixes_and_free_mail_are_refused_before_any_lookup(knot: KnotServer) -> None:
    np = facade(knot)
    org = Org(np, "acme")
    with pytest.raises(InvalidInput) as info:
        np.domains.add(org.admin, org.id, "co.uk")
    assert info.value.code == "domain.public_suffix"
    with pytest.raises(InvalidInput) as info:
        np.domains.add(org.admin, org.id, "gmail.com")
    assert info.value.code == "domain.free_mail"
    assert np.domains.list(org.admin, org.id) == []


def test_another_organizations_token_is_refused(knot: KnotServer) -> None:
    np = facade(knot)
    first, second = Org(np, "first"), Org(np, "second")
    name, _ = add_and_publish(first, knot, "f-shared")
    np.domains.add(second.admin, second.id, name)
    refused = np.domains.verify(second.admin, second.id, name)
    assert refused.result.verdict is Outcome.WRONG_VALUE
    assert refused.domain.status is DomainStatus.PENDING
    assert np.domains.verify(first.admin, first.id, name).verified


# -- the CLI --------------------------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["domains", "check", *args])
    return code, json.loads(out.getvalue())


def test_the_cli_exits_0_when_every_server_has_the_record(
    knot: KnotServer, knot_b: KnotServer
) -> None:
    knot.set_txt("verify.test", challenge("cli-ok"), "nulabpass-verification=clitoken")
    knot_b.set_txt("verify.test", challenge("cli-ok"), "nulabpass-verification=clitoken")
    code, report = run_cli(
        "cli-ok.verify.test",
        "--token",
        "clitoken",
        "--nameserver",
        f"127.0.0.1:{knot.port}",
        "--nameserver",
        f"127.0.0.1:{knot_b.port}",
    )
    assert code == 0
    assert report["verdict"] == "verified"
    assert report["record_name"] == "_nulabpass-challenge.cli-ok.verify.test"
    assert report["expected_value"] == "nulabpass-verification=clitoken"
    resolvers = report["resolvers"]
    assert isinstance(resolvers, list)
    assert len(resolvers) == 2
    assert resolvers[0]["outcome"] == "verified"
    assert resolvers[0]["found"] == ["nulabpass-verification=clitoken"]


def test_the_cli_exits_1_when_the_record_is_absent_or_wrong(knot: KnotServer) -> None:
    code, report = run_cli(
        "cli-absent.verify.test", "--token", "t", "--nameserver", f"127.0.0.1:{knot.port}"
    )
    assert (code, report["verdict"]) == (1, "absent")
    knot.set_txt("verify.test", challenge("cli-wrong"), "nulabpass-verification=nope")
    code, report = run_cli(
        "cli-wrong.verify.test", "--token", "t", "--nameserver", f"127.0.0.1:{knot.port}"
    )
    assert (code, report["verdict"]) == (1, "wrong_value")


def test_the_cli_exits_3_when_any_answer_is_indeterminate(knot: KnotServer) -> None:
    knot.set_txt("verify.test", challenge("cli-half"), "nulabpass-verification=t")
    code, report = run_cli(
        "cli-half.verify.test",
        "--token",
        "t",
        "--nameserver",
        f"127.0.0.1:{knot.port}",
        "--nameserver",
        f"127.0.0.1:{free_port()}",
        "--timeout",
        "0.3",
    )
    assert (code, report["verdict"]) == (3, "indeterminate")
