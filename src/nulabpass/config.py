"""Configuration supplied by the host, validated once at the edge (pydantic)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from nulabpass.errors import ConfigurationError

__all__ = ["NulabPassConfig", "load_config"]


class NulabPassConfig(BaseModel):
    """Host-wide settings of nulabpass.

    ``secret_key`` (at least 32 characters, e.g. ``secrets.token_urlsafe(32)``) keys the
    derivation of emailed tokens; keep it stable, as changing it voids pending
    invitations. ``base_url`` is where links in emails point. ``products`` lists the
    host's products (``"tracker"``, ``"diagrams"``): organization settings, SSO and
    managed accounts apply to all of them, and audit events name the one a request came
    through.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_key: SecretStr = Field(min_length=32)
    base_url: str
    products: tuple[str, ...] = ("default",)
    invitation_ttl: timedelta = timedelta(days=7)
    conversion_ttl: timedelta = timedelta(days=14)
    default_language: str = "en"
    default_timezone: str = "UTC"
    #: Identical failures (same action, actor, error and IP) inside this window are
    #: counted instead of each writing an audit event, so a flood cannot amplify writes.
    failure_aggregation_window: timedelta = timedelta(seconds=60)
    #: How many months audit events are kept before ``np.audit.purge`` may remove them;
    #: organizations may choose their own period (``np.audit.set_retention``).
    audit_retention_months: int = Field(default=13, ge=1, le=1200)
    #: How long a dispatcher owns a claimed outbox message before another may retry it.
    outbox_lease: timedelta = timedelta(minutes=5)
    outbox_max_backoff: timedelta = timedelta(hours=1)
    #: Length of the free trial.
    trial_length: timedelta = timedelta(days=30)
    #: Whether cancelling a trial ends it at once (otherwise it runs to its end).
    cancel_trial_ends_at_once: bool = True
    #: Seats of a trial; ``None`` means no seat limit during the trial.
    trial_seats: int | None = Field(default=None, ge=1)
    #: How long before a trial ends its reminder email goes to admins and plan admins.
    trial_reminder_before: timedelta = timedelta(days=3)
    #: How long a paid plan stays active past its period end while no renewal arrived.
    renewal_grace: timedelta = timedelta(days=3)
    #: How long a plan may stay suspended before it ends by itself (``None``: until
    #: the billing provider gives up).
    suspension_limit: timedelta | None = None
    #: Audit log admin privileges withdrawn when a plan ends come back automatically if
    #: a plan restarts within this window.
    privilege_restore_window: timedelta = timedelta(days=30)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL such as https://app.example.com")
        return value.rstrip("/")

    @field_validator("products")
    @classmethod
    def _check_products(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one product")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a product")
        for name in value:
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"product name {name!r} must be letters, digits, - or _")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("invitation_ttl", "conversion_ttl", "trial_length")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value


def load_config(**values: object) -> NulabPassConfig:
    """Build a :class:`NulabPassConfig`, turning validation errors into
    :class:`~nulabpass.errors.ConfigurationError` that names the field."""
    try:
        return NulabPassConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigurationError(
            f"Configuration field {field!r} is invalid: {first['msg']}.",
            code="config.invalid",
            details={"field": field},
        ) from None
