"""SCIM errors (RFC 7644 §3.12): an HTTP status and, for 400 and 409, a ``scimType``."""

from __future__ import annotations

from collections.abc import Mapping

from nulabpass.errors import Conflict, NulabPassError

__all__ = ["ERROR_SCHEMA", "ScimError"]

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(NulabPassError):
    """A request the SCIM service provider refuses, as RFC 7644 §3.12 describes it.

    ``status`` is the HTTP status of the error response and ``scim_type`` the
    ``scimType`` keyword (``invalidFilter``, ``invalidPath``, ``uniqueness``...) or
    ``None`` where the RFC defines none for the status.
    """

    default_code = "scim.error"
    default_public_message = "The provisioning request was refused."

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        scim_type: str | None = None,
        code: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code or (f"scim.{scim_type}" if scim_type else f"scim.http_{status}"),
            details=details,
        )
        self.status = status
        self.http_status = status
        self.scim_type = scim_type

    def to_json(self) -> dict[str, object]:
        """The error response body."""
        body: dict[str, object] = {
            "schemas": [ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.message,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def invalid_filter(message: str) -> ScimError:
    """A filter that cannot be parsed or evaluated."""
    return ScimError(message, status=400, scim_type="invalidFilter")


def invalid_path(message: str) -> ScimError:
    """A PATCH path that is malformed or names nothing patchable."""
    return ScimError(message, status=400, scim_type="invalidPath")


def invalid_value(message: str) -> ScimError:
    """A value of the wrong type or shape."""
    return ScimError(message, status=400, scim_type="invalidValue")


def invalid_syntax(message: str) -> ScimError:
    """A request body that is not the message it claims to be."""
    return ScimError(message, status=400, scim_type="invalidSyntax")


def mutability(message: str) -> ScimError:
    """An attempt to change an attribute that cannot be changed."""
    return ScimError(message, status=400, scim_type="mutability")


def no_target(message: str) -> ScimError:
    """A PATCH path filter that matched nothing where something was required."""
    return ScimError(message, status=400, scim_type="noTarget")


def account_not_managed(org_id: str, account_id: str) -> Conflict:
    """A SCIM user row written for an account ``org_id`` does not manage: every store
    refuses it, so that user lists can read the SCIM rows without the accounts."""
    return Conflict(
        f"Account {account_id} is not managed by organization {org_id}; it cannot have "
        "SCIM attributes there.",
        code="scim.account_not_managed",
    )


def scim_provisioned(account_id: str) -> Conflict:
    """A change of who manages an account that still has SCIM attributes: they must be
    deleted first (release does so)."""
    return Conflict(
        f"Account {account_id} still has SCIM attributes; delete them before the account "
        "changes organization or stops being managed.",
        code="account.scim_provisioned",
    )
