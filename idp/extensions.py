"""Flask extensions, created unbound and attached in :func:`idp.create_app`."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention))
migrate = Migrate()
babel = Babel()
csrf = CSRFProtect()
# Redis down: fall back to in-memory limits (``RATELIMIT_IN_MEMORY_FALLBACK_ENABLED``), not
# ``swallow_errors``, which would let every request through unlimited. Per-instance counting is
# weaker than shared counting but still bounds guessing, and logins keep working.
limiter = Limiter(key_func=get_remote_address, in_memory_fallback_enabled=True)
