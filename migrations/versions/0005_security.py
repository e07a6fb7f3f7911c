"""Security hardening: sealed private signing keys, back-channel logout deliveries, pushed requests,
known devices, DPoP-bound tokens, a daily budget of wrong one-time codes,
lockouts for matricules without an account.

Revision ID: 0005_security
Revises: 0004_delegation
Create Date: 2026-11-27 21:50:00

Existing plaintext keys are sealed in place with the configured KEY_ENCRYPTION_KEYS (the
migration runs inside the application, as ``idp db upgrade`` does); downgrading opens them again.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0005_security"
down_revision = "0004_delegation"
branch_labels = None
depends_on = None

signing_key = sa.table(
    "signing_key",
    sa.column("kid", sa.String),
    sa.column("alg", sa.String),
    sa.column("private_pem", sa.Text),
    sa.column("private_key_sealed", sa.Text),
    sa.column("kek_id", sa.String),
)


def upgrade():
    from idp import key_encryption

    op.create_table(
        "logout_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("sso_session_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("abandoned_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logout_delivery")),
    )
    with op.batch_alter_table("logout_delivery") as batch:
        batch.create_index(batch.f("ix_logout_delivery_client_id"), ["client_id"], unique=False)
        batch.create_index(batch.f("ix_logout_delivery_next_attempt_at"), ["next_attempt_at"], unique=False)
    op.create_table(
        "pushed_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("first_used_at", sa.DateTime(), nullable=True),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.Column("spent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pushed_request")),
        sa.UniqueConstraint("reference_hash", name=op.f("uq_pushed_request_reference_hash")),
    )
    with op.batch_alter_table("pushed_request") as batch:
        batch.create_index(batch.f("ix_pushed_request_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "known_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("device_hash", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_known_device_account_id_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_device")),
        sa.UniqueConstraint("account_id", "device_hash", name=op.f("uq_known_device_account_id")),
    )
    with op.batch_alter_table("known_device") as batch:
        batch.create_index(batch.f("ix_known_device_account_id"), ["account_id"], unique=False)
    with op.batch_alter_table("token") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("one_time_code") as batch:
        batch.add_column(sa.Column("failures_total", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("one_time_code") as batch:
        batch.alter_column("failures_total", existing_type=sa.Integer(), server_default=None)
    op.create_table(
        "unknown_login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_unknown_login_throttle")),
    )

    with op.batch_alter_table("signing_key") as batch:
        batch.add_column(sa.Column("private_key_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("kek_id", sa.String(length=16), nullable=True))
    connection = op.get_bind()
    for kid, alg, pem in connection.execute(sa.select(signing_key.c.kid, signing_key.c.alg, signing_key.c.private_pem)).all():
        kek_id, sealed = key_encryption.seal(pem.encode(), f"{kid}|{alg}")
        connection.execute(signing_key.update().where(signing_key.c.kid == kid).values(private_key_sealed=sealed, kek_id=kek_id))
    with op.batch_alter_table("signing_key") as batch:
        batch.drop_column("private_pem")
        batch.alter_column("private_key_sealed", existing_type=sa.Text(), nullable=False)
        batch.alter_column("kek_id", existing_type=sa.String(length=16), nullable=False)


def downgrade():
    from idp import key_encryption

    with op.batch_alter_table("signing_key") as batch:
        batch.add_column(sa.Column("private_pem", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(signing_key.c.kid, signing_key.c.alg, signing_key.c.kek_id, signing_key.c.private_key_sealed)).all()
    for kid, alg, kek_id, sealed in rows:
        pem = key_encryption.open_sealed(kek_id, sealed, f"{kid}|{alg}").decode()
        connection.execute(signing_key.update().where(signing_key.c.kid == kid).values(private_pem=pem))
    with op.batch_alter_table("signing_key") as batch:
        batch.drop_column("private_key_sealed")
        batch.drop_column("kek_id")
        batch.alter_column("private_pem", existing_type=sa.Text(), nullable=False)
    op.drop_table("logout_delivery")
    op.drop_table("pushed_request")
    op.drop_table("known_device")
    with op.batch_alter_table("token") as batch:
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("one_time_code") as batch:
        batch.drop_column("failures_total")
    op.drop_table("unknown_login_throttle")
