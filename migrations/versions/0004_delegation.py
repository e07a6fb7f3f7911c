"""Add delegations (Assistants DSP).

Revision ID: 0004_delegation
Revises: 0003_federation
Create Date: 2026-11-27 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0004_delegation"
down_revision = "0003_federation"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
