"""Authorization codes: bound to a DPoP key, and a redirect_uri only when the request had one.

Revision ID: 0008_protocol_features
Revises: 0006_security_round_two
Create Date: 2026-12-07 01:30:00

``authorization_code.dpop_jkt`` holds the JWK thumbprint a code is bound to (RFC 9449 §10 and
§10.1: ``dpop_jkt`` of the authorization request, or the key of a DPoP proof sent with the
pushed request); the token request must then carry a proof by that key.
``authorization_code.redirect_uri`` becomes nullable: it is stored only when the authorization
request included one, since only then does /token require it (RFC 6749 §4.1.3).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008_protocol_features"
down_revision = "0006_security_round_two"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("authorization_code") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
        batch.alter_column("redirect_uri", existing_type=sa.Text(), nullable=True)


def downgrade():
    # Codes live a minute: the ones without a redirect_uri are simply dropped.
    op.execute("DELETE FROM authorization_code WHERE redirect_uri IS NULL")
    with op.batch_alter_table("authorization_code") as batch:
        batch.alter_column("redirect_uri", existing_type=sa.Text(), nullable=False)
        batch.drop_column("dpop_jkt")
