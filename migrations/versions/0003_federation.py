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
    op.create_table('federated_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upstream', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('linked_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('last_acr', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_federated_identity_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federated_identity')),
    sa.UniqueConstraint('account_id', 'upstream', name='uq_federated_identity_account_upstream'),
    sa.UniqueConstraint('upstream', 'subject', name='uq_federated_identity_upstream_subject')
    )
    with op.batch_alter_table('federated_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_federated_identity_account_id'), ['account_id'], unique=False)

    op.create_table('federated_login',
    sa.Column('sso_session_id', sa.String(length=64), nullable=False),
    sa.Column('upstream', sa.String(length=32), nullable=False),
    sa.Column('name_id', sa.String(length=256), nullable=False),
    sa.Column('name_id_format', sa.String(length=256), nullable=True),
    sa.Column('session_index', sa.String(length=256), nullable=True),
    sa.ForeignKeyConstraint(['sso_session_id'], ['sso_session.id'], name=op.f('fk_federated_login_sso_session_id_sso_session')),
    sa.PrimaryKeyConstraint('sso_session_id', name=op.f('pk_federated_login'))
    )
    op.create_table('federated_arrival',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('upstream', sa.String(length=32), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federated_arrival'))
    )
    with op.batch_alter_table('federated_arrival', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_federated_arrival_expires_at'), ['expires_at'], unique=False)

    op.create_table('national_id_consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('text_version', sa.String(length=32), nullable=False),
    sa.Column('given_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_national_id_consent_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_national_id_consent'))
    )
    with op.batch_alter_table('national_id_consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_national_id_consent_account_id'), ['account_id'], unique=False)


def downgrade():
    with op.batch_alter_table('national_id_consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_national_id_consent_account_id'))
    op.drop_table('national_id_consent')
    with op.batch_alter_table('federated_arrival', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_federated_arrival_expires_at'))
    op.drop_table('federated_arrival')
    op.drop_table('federated_login')
    with op.batch_alter_table('federated_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_federated_identity_account_id'))
    op.drop_table('federated_identity')
