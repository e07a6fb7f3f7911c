"""Consented claims, resource servers, and self-registrations held for approval (issue 13, issue 14 item 1).

Revision ID: 0010_claims_and_resource_servers
Revises: 0009_passkeys
Create Date: 2026-12-07 03:00:00

- ``consent.claims``: the claims a patient agreed to, one by one (NULL for older consents,
  which count the claims of their scopes).
- ``client.resource_audience``: the audience URI a client serves as a resource server (unique);
  it may introspect tokens for that audience, and their ``sub`` is chosen for it.
- ``client.pending_approval`` / ``client.approved_reservations``: what a self-registered client
  asked for that only an admin may give, waiting or approved (existing clients: NULL, nothing).
- ``token.resource_audience``: the resource server an access token was issued for.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0010_claims_and_resource_servers"
down_revision = "0009_passkeys"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("consent") as batch:
        batch.add_column(sa.Column("claims", sa.JSON(), nullable=True))
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("resource_audience", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("pending_approval", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("approved_reservations", sa.JSON(), nullable=True))
        batch.create_unique_constraint(batch.f("uq_client_resource_audience"), ["resource_audience"])
    with op.batch_alter_table("token") as batch:
        batch.add_column(sa.Column("resource_audience", sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table("token") as batch:
        batch.drop_column("resource_audience")
    with op.batch_alter_table("client") as batch:
        batch.drop_constraint(batch.f("uq_client_resource_audience"), type_="unique")
        batch.drop_column("approved_reservations")
        batch.drop_column("pending_approval")
        batch.drop_column("resource_audience")
    with op.batch_alter_table("consent") as batch:
        batch.drop_column("claims")
