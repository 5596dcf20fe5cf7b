"""Alembic takes its URL from the config built by `database.session.alembic_config` (settings)."""

from alembic import context
from sqlalchemy import create_engine, pool

from database.models import Base

url = context.config.get_main_option("sqlalchemy.url")
assert url, "database URL missing: migrate with database.session.upgrade(url)"

with create_engine(url, poolclass=pool.NullPool).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
