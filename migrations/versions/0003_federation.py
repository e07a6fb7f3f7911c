"""Add federated identities and the MyGuichet national-identifier consent.

Revision ID: 0003_federation
Revises: 0002_add_activation_cgu_helpdesk
Create Date: 2026-11-27 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0003_federation"
down_revision = "0002_add_activation_cgu_helpdesk"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
