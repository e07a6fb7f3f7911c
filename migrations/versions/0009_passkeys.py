"""Passkeys: WebAuthn credentials and ceremonies (issue 17).

Revision ID: 0009_passkeys
Revises: 0008_protocol_features
Create Date: 2026-12-07 01:30:00

- ``passkey_user``: the WebAuthn user handle (32 random bytes, base64url) of one patient or one
  admin, never the matricule; exactly one of ``account_id`` and ``admin_id`` is set.
- ``passkey_credential``: a registered passkey: its credential id (unique across every owner),
  COSE public key, signature counter, backup flags (synced or device-bound), AAGUID,
  attestation format, transports, the patient's name for it, and ``suspended_at`` once its
  counter went back (a cloned authenticator).
- ``passkey_challenge``: the server-side challenges of the ceremonies, keyed by their SHA-256,
  bound to a purpose (and a registration to its owner), single use (``used_at``), expiring.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009_passkeys"
down_revision = "0008_protocol_features"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "passkey_user",
        sa.Column("user_handle", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("admin_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("(account_id IS NULL) <> (admin_id IS NULL)", name=op.f("ck_passkey_user_passkey_user_one_owner")),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_passkey_user_account_id_account")),
        sa.ForeignKeyConstraint(["admin_id"], ["admin_account.id"], name=op.f("fk_passkey_user_admin_id_admin_account")),
        sa.PrimaryKeyConstraint("user_handle", name=op.f("pk_passkey_user")),
        sa.UniqueConstraint("account_id", name=op.f("uq_passkey_user_account_id")),
        sa.UniqueConstraint("admin_id", name=op.f("uq_passkey_user_admin_id")),
    )
    op.create_table(
        "passkey_credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("user_handle", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("attestation_format", sa.String(length=32), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("suspended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_handle"], ["passkey_user.user_handle"], name=op.f("fk_passkey_credential_user_handle_passkey_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_credential")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkey_credential_credential_id")),
    )
    with op.batch_alter_table("passkey_credential") as batch:
        batch.create_index(batch.f("ix_passkey_credential_user_handle"), ["user_handle"], unique=False)
    op.create_table(
        "passkey_challenge",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("user_handle", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_challenge")),
    )
    with op.batch_alter_table("passkey_challenge") as batch:
        batch.create_index(batch.f("ix_passkey_challenge_expires_at"), ["expires_at"], unique=False)


def downgrade():
    with op.batch_alter_table("passkey_challenge") as batch:
        batch.drop_index(batch.f("ix_passkey_challenge_expires_at"))
    op.drop_table("passkey_challenge")
    with op.batch_alter_table("passkey_credential") as batch:
        batch.drop_index(batch.f("ix_passkey_credential_user_handle"))
    op.drop_table("passkey_credential")
    op.drop_table("passkey_user")
