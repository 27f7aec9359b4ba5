"""Alembic migrations of the nulabpass SQL schema, run by ``SqlStore.upgrade()``."""
