"""Security round 2: atomic security counters, per-account throttles, server-side admin sessions (issue 13).

Revision ID: 0006_security_round_two
Revises: 0005_security
Create Date: 2026-12-07 01:30:00

Reserved slot: the work for this issue fills it in.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006_security_round_two"
down_revision = "0005_security"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
