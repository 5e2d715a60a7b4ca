"""Alembic migrations of the persistence schema; run by ``orchestrator.persistence.upgrade``."""
