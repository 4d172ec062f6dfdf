"""Alembic migrations of the catalogue schema (run at start-up by ``catalogue.db.migrate``)."""
