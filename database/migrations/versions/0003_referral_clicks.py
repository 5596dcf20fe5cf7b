"""referral clicks: one row per visit of a tracked referral link; the outbox keeps each
email's headers (List-Unsubscribe)

Revision ID: 0003_referral_clicks
Revises: 0002_support
"""

import sqlalchemy as sa
from alembic import op

from database.types import UTCDateTime

revision = "0003_referral_clicks"
down_revision = "0002_support"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referral_click",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("shop_id", sa.String(length=64), nullable=False),
        sa.Column("referrer_kind", sa.String(length=16), nullable=False),
        sa.Column("clicked_at", UTCDateTime(timezone=True),
                  server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_referral_click_code", "referral_click", ["code", "shop_id"])
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.drop_column("headers")
    op.drop_index("ix_referral_click_code", table_name="referral_click")
    op.drop_table("referral_click")
