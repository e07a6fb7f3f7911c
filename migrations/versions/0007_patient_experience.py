"""The patient's and the helpdesk's experience (issue 14).

Revision ID: 0007_patient_experience
Revises: 0006_security_round_two
Create Date: 2026-12-07 01:30:00

Reserved slot: the work for this issue fills it in.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007_patient_experience"
down_revision = "0006_security_round_two"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
