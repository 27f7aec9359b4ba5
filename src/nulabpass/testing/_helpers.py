"""Ready-made set-ups for tests and demos."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import attrs

from nulabpass._context import Actor, RequestContext
from nulabpass._facade import NulabPass
from nulabpass._gate import Capability
from nulabpass._ids import new_id
from nulabpass._runtime import Recorder
from nulabpass.config import NulabPassConfig
from nulabpass.domains import DomainPolicy, StaticTxtResolver
from nulabpass.errors import ConfigurationError, NotFound
from nulabpass.mail import RecordingMailer
from nulabpass.org._email import normalize_email
from nulabpass.org._model import Domain, DomainStatus, Organization
from nulabpass.ports import (
    BillingProvider,
    Clock,
    KeyProvider,
    MetadataFetcher,
    Store,
    TxtResolver,
)
from nulabpass.stores.memory import MemoryStore
from nulabpass.testing._billing import FakeBillingProvider
from nulabpass.testing._clock import FrozenClock
from nulabpass.testing._keys import MemoryKeyProvider
from nulabpass.testing._metadata import StaticMetadataFetcher

__all__ = [
    "make_config",
    "make_nulabpass",
    "mark_domain_verified",
    "mark_saml_configured",
    "scim_ready_org",
]


def make_config(**overrides: object) -> NulabPassConfig:
    """A valid configuration with a random secret key, for tests."""
    values: dict[str, object] = {
        "secret_key": secrets.token_urlsafe(32),
        "base_url": "https://app.example.test",
        "products": ("tracker", "diagrams"),
    }
    values.update(overrides)
    return NulabPassConfig.model_validate(values)


def make_nulabpass(
    store: Store | None = None,
    *,
    clock: Clock | None = None,
    mailer: RecordingMailer | None = None,
    billing: BillingProvider | None = None,
    keys: KeyProvider | None = None,
    resolver: TxtResolver | Sequence[TxtResolver] | None = None,
    domain_policy: DomainPolicy | None = None,
    metadata_fetcher: MetadataFetcher | None = None,
    **config: object,
) -> NulabPass:
    """A :class:`NulabPass` on the memory store (unless given one), a
    :class:`FrozenClock`, a :class:`RecordingMailer` and a :class:`FakeBillingProvider`
    (unless given others); reach them as ``np.clock`` and the objects you passed.
    DNS lookups go to a :class:`StaticTxtResolver` unless ``resolver`` is given
    (``np.domains.resolvers[0]``), and IdP metadata is fetched from a
    :class:`StaticMetadataFetcher` unless ``metadata_fetcher`` is given
    (``np.saml.metadata_fetcher``)."""
    chosen: Store = store if store is not None else MemoryStore()
    return NulabPass(
        chosen,
        config=make_config(**config),
        clock=clock or FrozenClock(),
        mailer=mailer if mailer is not None else RecordingMailer(),
        billing=billing if billing is not None else FakeBillingProvider(),
        keys=keys if keys is not None else MemoryKeyProvider(),
        resolver=resolver if resolver is not None else StaticTxtResolver(),
        domain_policy=domain_policy,
        metadata_fetcher=(
            metadata_fetcher if metadata_fetcher is not None else StaticMetadataFetcher()
        ),
    )


def mark_saml_configured(np: NulabPass, org_id: str) -> None:
    """Record that ``org_id`` has SAML configured, as the SAML feature does once an
    organization's IdP settings validate. Audited as ``saml.configured``."""

    def body(rec: Recorder) -> None:
        org = rec.uow.organizations.get(org_id)
        if org is None:
            raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
        np._runtime.gate.require(rec.uow, org_id, Capability.CONFIGURE_SSO, rec.now)
        rec.uow.organizations.update(
            attrs.evolve(org, saml_configured_at=rec.now, updated_at=rec.now)
        )
        rec.target("organization", org_id)
        rec.meta(via="nulabpass.testing")

    np._runtime.run(
        scope=org_id,
        action="saml.configured",
        actor=Actor.system(),
        ctx=RequestContext(),
        body=body,
    )


def mark_domain_verified(
    np: NulabPass, org_id: str, domain: str, *, include_subdomains: bool = False
) -> None:
    """Record that ``org_id`` verified ``domain``, as the domain feature does once its
    DNS proof checks. Audited as ``domain.verified``."""
    name = normalize_email(f"probe@{domain}").rpartition("@")[2]

    def body(rec: Recorder) -> None:
        if rec.uow.organizations.get(org_id) is None:
            raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
        existing = rec.uow.domains.get(org_id, name)
        if existing is None:
            rec.uow.domains.add(
                Domain(
                    id=new_id("dom"),
                    org_id=org_id,
                    name=name,
                    status=DomainStatus.VERIFIED,
                    include_subdomains=include_subdomains,
                    created_at=rec.now,
                    updated_at=rec.now,
                    verified_at=rec.now,
                )
            )
        else:
            rec.uow.domains.update(
                attrs.evolve(
                    existing,
                    status=DomainStatus.VERIFIED,
                    include_subdomains=include_subdomains,
                    verified_at=rec.now,
                    updated_at=rec.now,
                )
            )
        rec.target("domain", name)
        rec.meta(domain=name, via="nulabpass.testing")

    np._runtime.run(
        scope=org_id,
        action="domain.verified",
        actor=Actor.system(),
        ctx=RequestContext(),
        body=body,
    )


def scim_ready_org(np: NulabPass, domain: str = "example.com") -> tuple[Organization, str]:
    """An organization ready for SCIM provisioning, and a SCIM bearer token for it.

    A non-managed founder (admin and plan admin, the break-glass account) creates the
    organization and starts its trial; SAML is marked configured (see
    :func:`mark_saml_configured`); the founder adds ``domain`` and verifies it through the
    real DNS flow: the challenge's TXT record is published in ``np``'s
    :class:`StaticTxtResolver` (every one, when there are several vantage points) and
    ``np.domains.verify`` checks it. Then the founder creates a SCIM token. Use the token
    as ``Authorization: Bearer <token>``::

        org, token = scim_ready_org(np)
        app = nulabpass.web.scim_wsgi_app(np, "/scim/v2")

    ``np`` must answer DNS from static resolvers (as :func:`make_nulabpass` builds it
    unless given another ``resolver``): otherwise this raises
    :class:`~nulabpass.errors.ConfigurationError` (``testing.static_resolver_required``)
    before creating anything, since no test can publish a record in real DNS.
    """
    resolvers = np.domains.resolvers
    static = [r for r in resolvers if isinstance(r, StaticTxtResolver)]
    if not static or len(static) != len(resolvers):
        kinds = ", ".join(type(r).__name__ for r in resolvers)
        raise ConfigurationError(
            "scim_ready_org verifies the domain by publishing its TXT record in a "
            f"StaticTxtResolver, but this NulabPass asks {kinds}; build it with "
            "resolver=StaticTxtResolver() (make_nulabpass does so by default).",
            code="testing.static_resolver_required",
        )
    founder = np.accounts.register(f"founder-{secrets.token_hex(4)}@founders.test", "Founder")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, f"Org {secrets.token_hex(3)}")
    np.plans.start_trial(admin, org.id)
    mark_saml_configured(np, org.id)
    view = np.domains.add(admin, org.id, domain)
    if view.record_value is not None:
        for resolver in static:
            resolver.publish(view.record_name, view.record_value)
    check = np.domains.verify(admin, org.id, view.name)
    if not check.verified:
        raise ConfigurationError(
            f"The domain {view.name} did not verify: {check.result.verdict}.",
            code="testing.domain_not_verified",
        )
    _token, secret = np.scim.tokens.create(admin, org.id, "SCIM")
    return np.orgs.get(org.id), secret
