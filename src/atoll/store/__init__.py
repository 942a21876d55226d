"""Persistence: SQLAlchemy 2 engine, sessions, ORM tables and Alembic migrations."""
