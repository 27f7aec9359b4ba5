"""SAML sign-in through the facade: each organization's IdP configuration and the
AuthnRequests awaiting their response.

Revision ID: 0006_saml_login
Revises: 0005_scim

Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_saml_login"
down_revision: str | Sequence[str] | None = "0005_scim"
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
    """Create the SAML sign-in tables."""
    op.create_table(
        "nulabpass_saml_configs",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("idp_entity_id", sa.String(), nullable=False),
        sa.Column("signing_certificates", sa.JSON(), nullable=False),
        sa.Column("sso_redirect_url", sa.String(), nullable=True),
        sa.Column("sso_post_url", sa.String(), nullable=True),
        sa.Column("want_authn_requests_signed", sa.Boolean(), nullable=False),
        sa.Column("allow_idp_initiated", sa.Boolean(), nullable=False),
        sa.Column("configured_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name="pk_nulabpass_saml_configs"),
        _org_fk("nulabpass_saml_configs"),
    )
    op.create_table(
        "nulabpass_saml_requests",
        sa.Column("state_hash", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("relay_state", sa.String(), nullable=True),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_nulabpass_saml_requests"),
        _org_fk("nulabpass_saml_requests"),
    )
    op.create_index(
        "ix_nulabpass_saml_requests_expires_at", "nulabpass_saml_requests", ["expires_at"]
    )
    op.create_index("ix_nulabpass_saml_requests_org_id", "nulabpass_saml_requests", ["org_id"])


def downgrade() -> None:
    """Drop the SAML sign-in tables."""
    op.drop_index("ix_nulabpass_saml_requests_org_id", table_name="nulabpass_saml_requests")
    op.drop_index("ix_nulabpass_saml_requests_expires_at", table_name="nulabpass_saml_requests")
    op.drop_table("nulabpass_saml_requests")
    op.drop_table("nulabpass_saml_configs")
