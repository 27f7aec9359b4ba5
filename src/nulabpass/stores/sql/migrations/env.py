"""Alembic environment of the nulabpass migrations.

:meth:`SqlStore.upgrade` runs it with its own connection, passed in
``config.attributes["connection"]`` and already inside a transaction. Maintainers may
also point Alembic's command line at a database (``sqlalchemy.url``) to generate a new
revision, or render the SQL of the migrations offline (``--sql``) for a DBA to review.
Migrations record their state in ``nulabpass_alembic_version``, never in the host's
``alembic_version``, and compare only tables prefixed ``nulabpass_``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine

from nulabpass.stores.sql.schema import VERSION_TABLE, include_name, metadata
from nulabpass.stores.sql.store import SqlStore


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


def _run_online(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    config = context.config
    if context.is_offline_mode():
        _configure(
            url=config.get_main_option("sqlalchemy.url"),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_online(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("Set sqlalchemy.url to run the nulabpass migrations from Alembic.")
    store = SqlStore.from_url(url)
    try:
        engine = store.bind
        if isinstance(engine, Engine):
            with engine.begin() as conn:
                _run_online(conn)
    finally:
        store.dispose()


_run()
