"""Security hardening: back-channel logout, encrypted signing keys, PAR.

Revision ID: 0005_security
Revises: 0004_delegation
Create Date: 2026-11-27 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0005_security"
down_revision = "0004_delegation"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
