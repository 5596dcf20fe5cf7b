"""email events: SendGrid's Event Webhook events (each once by sg_event_id), suppressions it
causes, and provider message ids indexed for the events that carry no custom args

Revision ID: 0004_email_events
Revises: 0003_referral_clicks
"""

import sqlalchemy as sa
from alembic import op

from database.types import UTCDateTime

revision = "0004_email_events"
down_revision = "0003_referral_clicks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sg_event_id", sa.String(length=100), nullable=False, unique=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("email_send_id", sa.Integer(), sa.ForeignKey("email_send.id"), nullable=True),
        sa.Column("shop_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("sg_message_id", sa.String(length=400), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_email_event_email_send_id", "email_event", ["email_send_id"])
    op.create_index("ix_email_event_customer", "email_event", ["shop_id", "customer_id"])
    op.create_table(
        "email_suppression",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("shop_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("suppressed_at", UTCDateTime(), nullable=True),
        sa.Column("sg_event_id", sa.String(length=100), nullable=True),
        sa.Column("deferrals_in_a_row", sa.Integer(), nullable=False),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("shop_id", "customer_id"),
    )
    op.create_index("ix_email_send_provider_message_id", "email_send", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_email_send_provider_message_id", "email_send")
    op.drop_table("email_suppression")
    op.drop_index("ix_email_event_customer", "email_event")
    op.drop_index("ix_email_event_email_send_id", "email_event")
    op.drop_table("email_event")
