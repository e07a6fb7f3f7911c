"""Passkeys: WebAuthn credentials and ceremonies (issue 17).

Revision ID: 0009_passkeys
Revises: 0008_protocol_features
Create Date: 2026-12-07 01:30:00

Reserved slot: the work for this issue fills it in.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009_passkeys"
down_revision = "0008_protocol_features"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
