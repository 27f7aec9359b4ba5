"""Indexes for SCIM lists: covering look-ups of the accounts an organization manages and
of its users' email values.

Revision ID: 0009_scim_indexes
Revises: 0008_scim_attributes

Every SCIM list joins the organization's SCIM rows with the accounts it manages; with
``(managed_by, id)`` the join reads only the index, and the index on ``managed_by``
alone, its prefix, goes. An ``emails[...]`` filter probes each user's emails; with
``(org_id, account_id, type, value_key)`` the usual ``type``/``value`` filters read only
the index too.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_scim_indexes"
down_revision: str | Sequence[str] | None = "0008_scim_attributes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two covering indexes; drop the one the first makes redundant."""
    op.create_index(
        "ix_nulabpass_accounts_managed_by_id", "nulabpass_accounts", ["managed_by", "id"]
    )
    op.drop_index("ix_nulabpass_accounts_managed_by", table_name="nulabpass_accounts")
    op.create_index(
        "ix_nulabpass_scim_emails_org_id_account_id_type_value_key",
        "nulabpass_scim_emails",
        ["org_id", "account_id", "type", "value_key"],
    )


def downgrade() -> None:
    """Restore the indexes of revision 0006_saml_login."""
    op.drop_index(
        "ix_nulabpass_scim_emails_org_id_account_id_type_value_key",
        table_name="nulabpass_scim_emails",
    )
    op.create_index("ix_nulabpass_accounts_managed_by", "nulabpass_accounts", ["managed_by"])
    op.drop_index("ix_nulabpass_accounts_managed_by_id", table_name="nulabpass_accounts")
