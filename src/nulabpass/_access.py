"""The one question a host asks on every request: may this account use the products?"""

from __future__ import annotations

from datetime import datetime

import attrs

from nulabpass._gate import Capability
from nulabpass._runtime import Runtime
from nulabpass.org._model import AccountStatus

__all__ = ["AccessAPI", "AccessDecision"]


@attrs.frozen(slots=True)
class AccessDecision:
    """Whether an account may use the host's products now, and if not why.

    ``code`` is ``access.ok`` or a stable reason (``access.no_account``,
    ``access.invitation_pending``, ``access.deactivated``, ``access.plan_inactive``).
    """

    allowed: bool
    code: str
    reason: str
    managed_by: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


class AccessAPI:
    """Access decisions for hosts (no audit event: this is a read on the hot path)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def check(self, account_id: str, now: datetime | None = None) -> AccessDecision:
        """Decide whether ``account_id`` may use the products at ``now`` (default: the
        clock). An active non-managed account may; a managed account also needs its
        organization's plan to allow sign-in."""
        at = self._rt.now() if now is None else now
        with self._rt.store.transaction() as uow:
            account = uow.accounts.get(account_id) if isinstance(account_id, str) else None
            if account is None:
                return AccessDecision(False, "access.no_account", "There is no such account.")
            if account.status is AccountStatus.INVITED:
                return AccessDecision(
                    False,
                    "access.invitation_pending",
                    "The invitation to this managed account has not been accepted yet.",
                    account.managed_by,
                )
            if account.status is AccountStatus.DEACTIVATED:
                return AccessDecision(
                    False, "access.deactivated", "The account is deactivated.", account.managed_by
                )
            if account.managed_by is not None and not self._rt.gate.allows(
                uow, account.managed_by, Capability.SIGN_IN, at
            ):
                return AccessDecision(
                    False,
                    "access.plan_inactive",
                    "The organization that manages this account has no active plan.",
                    account.managed_by,
                )
            return AccessDecision(True, "access.ok", "Access allowed.", account.managed_by)
