"""support: keyed audit entries, who paid a payout batch and its totals; provider message ids
as long as the model allows (0001 had 200, the model 400)

Revision ID: 0002_support
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_support"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action_key", sa.String(length=200), nullable=True))
        batch_op.create_index("ux_support_audit_action_key", ["action_key"], unique=True)
        batch_op.create_index("ix_support_audit_customer", ["shop_id", "customer_id"], unique=False)
    with op.batch_alter_table("credit_payout_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("totals", sa.JSON(), nullable=True))
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_credit_ledger_payout_batch", ["payout_batch"], unique=False)
    with op.batch_alter_table("email_send", schema=None) as batch_op:
        batch_op.alter_column(
            "provider_message_id", existing_type=sa.String(length=200),
            type_=sa.String(length=400), existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("email_send", schema=None) as batch_op:
        batch_op.alter_column(
            "provider_message_id", existing_type=sa.String(length=400),
            type_=sa.String(length=200), existing_nullable=True,
        )
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_ledger_payout_batch")
    with op.batch_alter_table("credit_payout_batch", schema=None) as batch_op:
        batch_op.drop_column("totals")
        batch_op.drop_column("actor")
    with op.batch_alter_table("support_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_support_audit_customer")
        batch_op.drop_index("ux_support_audit_action_key")
        batch_op.drop_column("action_key")
