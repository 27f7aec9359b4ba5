"""SCIM provisioning: users' SCIM attributes and emails, groups' external ids,
tombstones of deleted users and per-organization bearer tokens (hashes only); and an
index for the break-glass count on memberships, which every change runs.

Revision ID: 0005_scim
Revises: 0004_audit

Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_scim"
down_revision: str | Sequence[str] | None = "0004_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["nulabpass_organizations.id"],
        name=f"fk_{table}_org_id_nulabpass_organizations",
    )


def upgrade() -> None:
    """Create the SCIM tables."""
    optional = [
        "external_id",
        "formatted",
        "family_name",
        "given_name",
        "middle_name",
        "honorific_prefix",
        "honorific_suffix",
        "nick_name",
        "title",
        "user_type",
        "locale",
        "employee_number",
        "cost_center",
        "organization",
        "division",
        "department",
        "manager_id",
        "display_name",
        "preferred_language",
        "timezone",
    ]
    op.create_table(
        "nulabpass_scim_users",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("user_name", sa.String(), nullable=False),
        sa.Column("user_name_key", sa.String(), nullable=False),
        *(sa.Column(name, sa.String(), nullable=True) for name in optional),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "account_id", name="pk_nulabpass_scim_users"),
        _org_fk("nulabpass_scim_users"),
    )
    op.create_index(
        "ix_nulabpass_scim_users_org_id_user_name_key",
        "nulabpass_scim_users",
        ["org_id", "user_name_key", "account_id"],
    )
    op.create_index(
        "ix_nulabpass_scim_users_org_id_external_id",
        "nulabpass_scim_users",
        ["org_id", "external_id"],
    )
    op.create_index("ix_nulabpass_scim_users_account_id", "nulabpass_scim_users", ["account_id"])
    op.create_table(
        "nulabpass_scim_emails",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("value_key", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("display", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint(
            "org_id", "account_id", "position", name="pk_nulabpass_scim_emails"
        ),
    )
    op.create_index(
        "ix_nulabpass_scim_emails_org_id_value_key",
        "nulabpass_scim_emails",
        ["org_id", "value_key"],
    )
    op.create_table(
        "nulabpass_scim_groups",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("team_id", name="pk_nulabpass_scim_groups"),
    )
    op.create_index(
        "ix_nulabpass_scim_groups_org_id_external_id",
        "nulabpass_scim_groups",
        ["org_id", "external_id"],
    )
    op.create_table(
        "nulabpass_scim_tombstones",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("user_name", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("deleted_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "account_id", name="pk_nulabpass_scim_tombstones"),
    )
    op.create_table(
        "nulabpass_scim_tokens",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_scim_tokens"),
        _org_fk("nulabpass_scim_tokens"),
    )
    op.create_index("ix_nulabpass_scim_tokens_org_id", "nulabpass_scim_tokens", ["org_id"])
    op.create_index(
        "ix_nulabpass_memberships_org_id_role_plan_admin",
        "nulabpass_memberships",
        ["org_id", "role", "plan_admin"],
    )


def downgrade() -> None:
    """Drop the SCIM tables."""
    op.drop_index(
        "ix_nulabpass_memberships_org_id_role_plan_admin", table_name="nulabpass_memberships"
    )
    op.drop_index("ix_nulabpass_scim_tokens_org_id", table_name="nulabpass_scim_tokens")
    op.drop_table("nulabpass_scim_tokens")
    op.drop_table("nulabpass_scim_tombstones")
    op.drop_index(
        "ix_nulabpass_scim_groups_org_id_external_id", table_name="nulabpass_scim_groups"
    )
    op.drop_table("nulabpass_scim_groups")
    op.drop_index("ix_nulabpass_scim_emails_org_id_value_key", table_name="nulabpass_scim_emails")
    op.drop_table("nulabpass_scim_emails")
    op.drop_index("ix_nulabpass_scim_users_account_id", table_name="nulabpass_scim_users")
    op.drop_index("ix_nulabpass_scim_users_org_id_external_id", table_name="nulabpass_scim_users")
    op.drop_index(
        "ix_nulabpass_scim_users_org_id_user_name_key", table_name="nulabpass_scim_users"
    )
    op.drop_table("nulabpass_scim_users")
