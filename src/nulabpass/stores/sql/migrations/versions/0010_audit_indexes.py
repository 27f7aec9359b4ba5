"""A covering index for audit queries about one actor in a time range.

Revision ID: 0010_audit_indexes
Revises: 0009_scim_indexes

A query for one actor's events in a period, newest first, pages by ``seq``. With
``(scope, actor_id, occurred_at, seq)`` the matching sequence numbers come from the
index alone, and only the events of the page are read from the table; the index on
``(scope, actor_id, occurred_at)``, its prefix, goes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_audit_indexes"
down_revision: str | Sequence[str] | None = "0009_scim_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "nulabpass_audit_events"


def upgrade() -> None:
    """Create the covering index; drop the one it makes redundant."""
    op.create_index(
        "ix_nulabpass_audit_events_scope_actor_id_occurred_at_seq",
        _TABLE,
        ["scope", "actor_id", "occurred_at", "seq"],
    )
    op.drop_index("ix_nulabpass_audit_events_scope_actor_id_occurred_at", table_name=_TABLE)


def downgrade() -> None:
    """Restore the index of revision 0006_saml_login."""
    op.create_index(
        "ix_nulabpass_audit_events_scope_actor_id_occurred_at",
        _TABLE,
        ["scope", "actor_id", "occurred_at"],
    )
    op.drop_index("ix_nulabpass_audit_events_scope_actor_id_occurred_at_seq", table_name=_TABLE)
