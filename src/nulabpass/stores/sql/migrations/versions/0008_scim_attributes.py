"""The rest of the SCIM User schema (RFC 7643 §4.1): ``profileUrl`` and the
multi-valued attributes ``phoneNumbers``, ``ims``, ``photos``, ``addresses``,
``entitlements``, ``roles`` and ``x509Certificates``.

Revision ID: 0008_scim_attributes
Revises: 0007_saml_metadata

The multi-valued attributes are JSON lists on the user's row: no filter may name them
(the service answers ``invalidFilter``), so they need no table or index of their own.
Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_scim_attributes"
down_revision: str | Sequence[str] | None = "0007_saml_metadata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "nulabpass_scim_users"
_JSON_COLUMNS = (
    "phone_numbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509_certificates",
)


def upgrade() -> None:
    """Add the columns; existing users have none of these attributes."""
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("profile_url", sa.String(), nullable=True))
        for name in _JSON_COLUMNS:
            batch.add_column(sa.Column(name, sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the columns (and the values stored in them)."""
    with op.batch_alter_table(_TABLE) as batch:
        for name in reversed(_JSON_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("profile_url")
