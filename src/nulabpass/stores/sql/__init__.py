"""The SQL store: SQLite (the embedded default) and PostgreSQL through SQLAlchemy Core.

::

    from nulabpass.stores.sql import SqlStore

    store = SqlStore.from_url("sqlite:///nulabpass.db")
    store.upgrade()  # create or migrate the nulabpass_* tables

See :mod:`nulabpass.stores.sql.store` for how transactions map onto the database,
including joining a host's own transaction.
"""

from nulabpass.stores.sql._domains import SqlRateLimiter
from nulabpass.stores.sql._saml import SqlReplayCache
from nulabpass.stores.sql.schema import metadata
from nulabpass.stores.sql.store import SqlStore, SqlUnitOfWork, configure_sqlite_engine

__all__ = [
    "SqlRateLimiter",
    "SqlReplayCache",
    "SqlStore",
    "SqlUnitOfWork",
    "configure_sqlite_engine",
    "metadata",
]
