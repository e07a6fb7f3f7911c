"""The protocol package: DPoP-bound codes, FAPI 2.0 client profile (issue 16).

Revision ID: 0008_protocol_features
Revises: 0007_patient_experience
Create Date: 2026-12-07 01:30:00

Reserved slot: the work for this issue fills it in.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008_protocol_features"
down_revision = "0007_patient_experience"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
