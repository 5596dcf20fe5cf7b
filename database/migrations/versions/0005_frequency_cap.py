"""frequency cap: whether each email is marketing (the cap counts only those) and, for one the
cap holds back, the send hour it waits for

Revision ID: 0005_frequency_cap
Revises: 0004_email_events
"""

import sqlalchemy as sa
from alembic import op

from database.types import UTCDateTime

revision = "0005_frequency_cap"
down_revision = "0004_email_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before it were all the default steps' (marketing); counting a transactional
    # one would only hold a later email back, never send one too soon.
    op.add_column(
        "email_send",
        sa.Column("marketing", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column("email_send", sa.Column("deferred_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_send") as batch:
        batch.drop_column("deferred_until")
        batch.drop_column("marketing")
