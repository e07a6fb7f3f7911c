"""Add delegations (Assistants DSP), the delegation of tokens and codes, and the audit retention purge.

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

# The append-only trigger of 0001, with one way through: the retention job (``idp audit purge``)
# flags its own transaction (``set_config('idp.audit_purge', 'on', true)``), and even then only
# rows older than the minimum retention (1096 days, 3 years: EHDS Art. 9) may go. UPDATE stays refused.
PURGE_AWARE_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('idp.audit_purge', true) = 'on'
       AND OLD.occurred_at < (now() AT TIME ZONE 'UTC') - interval '1096 days' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_event is append-only';
END $$
"""
APPEND_ONLY_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$"
)


def upgrade():
    op.create_table('delegation',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('assistant_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=100), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_via', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['assistant_id'], ['account.id'], name=op.f('fk_delegation_assistant_id_account')),
    sa.ForeignKeyConstraint(['created_by_id'], ['account.id'], name=op.f('fk_delegation_created_by_id_account')),
    sa.ForeignKeyConstraint(['owner_id'], ['account.id'], name=op.f('fk_delegation_owner_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegation'))
    )
    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegation_assistant_id'), ['assistant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delegation_owner_id'), ['owner_id'], unique=False)

    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delegation_id', sa.String(length=32), nullable=True))

    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delegation_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('actor_account_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_token_delegation_id'), ['delegation_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PURGE_AWARE_FUNCTION)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)

    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_token_delegation_id'))
        batch_op.drop_column('actor_account_id')
        batch_op.drop_column('delegation_id')

    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.drop_column('delegation_id')

    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegation_owner_id'))
        batch_op.drop_index(batch_op.f('ix_delegation_assistant_id'))

    op.drop_table('delegation')
