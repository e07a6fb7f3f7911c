"""Security round 2: atomic security counters, per-account throttles, server-side admin sessions (issue 13).

Revision ID: 0006_security_round_two
Revises: 0005_security
Create Date: 2026-12-07 01:30:00

- ``usage_budget``: budgets of uses per key and window, spent by one upsert (an account's wrong
  one-time codes per day, codes sent per day, the cooldown between two sends).
- ``admin_session``: admin sessions kept on the server (revoked at logout, idle and absolute
  timeouts) instead of the signed cookie.
- ``one_time_code.subject_key`` (whose budgets a challenge spends; existing rows are their
  account's) replaces ``failures_total``, whose per-row sums the daily budget no longer reads.
- ``activation_letter.failed_attempts`` goes: wrong activation codes are counted per matricule in
  ``unknown_login_throttle`` and lock instead of voiding the letter.
- ``admin_account``: a backoff lockout (``failed_attempts``, ``lockouts``, ``locked_until``), and
  the TOTP seed sealed with the configured KEY_ENCRYPTION_KEYS (``totp_seed_sealed``,
  ``totp_kek_id``) in place of the clear ``totp_secret``. Like 0005, the migration runs inside the
  application (``idp db upgrade``) to reach the keys; downgrading opens the seeds again.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006_security_round_two"
down_revision = "0005_security"
branch_labels = None
depends_on = None

admin_account = sa.table(
    "admin_account",
    sa.column("id", sa.Integer),
    sa.column("totp_secret", sa.String),
    sa.column("totp_seed_sealed", sa.Text),
    sa.column("totp_kek_id", sa.String),
)
one_time_code = sa.table("one_time_code", sa.column("account_id", sa.Integer), sa.column("subject_key", sa.String))


def _associated(admin_id: int) -> str:
    return f"admin_account:{admin_id}:totp"  # idp/admin_account.py binds each sealed seed to its row


def upgrade():
    from idp import key_encryption

    op.create_table(
        "usage_budget",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_started_at", sa.DateTime(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_usage_budget")),
    )
    with op.batch_alter_table("usage_budget") as batch:
        batch.create_index(batch.f("ix_usage_budget_window_started_at"), ["window_started_at"], unique=False)
    op.create_table(
        "admin_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["admin_id"], ["admin_account.id"], name=op.f("fk_admin_session_admin_id_admin_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_session")),
    )
    with op.batch_alter_table("admin_session") as batch:
        batch.create_index(batch.f("ix_admin_session_admin_id"), ["admin_id"], unique=False)

    with op.batch_alter_table("one_time_code") as batch:
        batch.add_column(sa.Column("subject_key", sa.String(length=64), nullable=True))
        batch.drop_column("failures_total")
    op.execute(one_time_code.update().values(subject_key=sa.func.coalesce(
        sa.literal("account:") + sa.cast(one_time_code.c.account_id, sa.String), sa.literal("none"))))
    with op.batch_alter_table("one_time_code") as batch:
        batch.alter_column("subject_key", existing_type=sa.String(length=64), nullable=False)

    with op.batch_alter_table("activation_letter") as batch:
        batch.drop_column("failed_attempts")

    with op.batch_alter_table("admin_account") as batch:
        batch.add_column(sa.Column("totp_seed_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("totp_kek_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lockouts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
    connection = op.get_bind()
    for admin_id, seed in connection.execute(sa.select(admin_account.c.id, admin_account.c.totp_secret)).all():
        kek_id, sealed = key_encryption.seal(seed.encode(), _associated(admin_id))
        connection.execute(admin_account.update().where(admin_account.c.id == admin_id).values(totp_seed_sealed=sealed, totp_kek_id=kek_id))
    with op.batch_alter_table("admin_account") as batch:
        batch.drop_column("totp_secret")
        batch.alter_column("totp_seed_sealed", existing_type=sa.Text(), nullable=False)
        batch.alter_column("totp_kek_id", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("failed_attempts", existing_type=sa.Integer(), server_default=None)
        batch.alter_column("lockouts", existing_type=sa.Integer(), server_default=None)


def downgrade():
    from idp import key_encryption

    with op.batch_alter_table("admin_account") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(admin_account.c.id, admin_account.c.totp_kek_id, admin_account.c.totp_seed_sealed)).all()
    for admin_id, kek_id, sealed in rows:
        seed = key_encryption.open_sealed(kek_id, sealed, _associated(admin_id)).decode()
        connection.execute(admin_account.update().where(admin_account.c.id == admin_id).values(totp_secret=seed))
    with op.batch_alter_table("admin_account") as batch:
        batch.drop_column("totp_seed_sealed")
        batch.drop_column("totp_kek_id")
        batch.drop_column("failed_attempts")
        batch.drop_column("lockouts")
        batch.drop_column("locked_until")
        batch.alter_column("totp_secret", existing_type=sa.String(length=64), nullable=False)

    with op.batch_alter_table("activation_letter") as batch:
        batch.add_column(sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("activation_letter") as batch:
        batch.alter_column("failed_attempts", existing_type=sa.Integer(), server_default=None)

    with op.batch_alter_table("one_time_code") as batch:
        batch.drop_column("subject_key")
        batch.add_column(sa.Column("failures_total", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("one_time_code") as batch:
        batch.alter_column("failures_total", existing_type=sa.Integer(), server_default=None)

    with op.batch_alter_table("admin_session") as batch:
        batch.drop_index(batch.f("ix_admin_session_admin_id"))
    op.drop_table("admin_session")
    with op.batch_alter_table("usage_budget") as batch:
        batch.drop_index(batch.f("ix_usage_budget_window_started_at"))
    op.drop_table("usage_budget")
