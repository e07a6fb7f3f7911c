"""Embedded default settings: one machine, SQLite, messages kept in the outbox.

Every setting can be overridden by a settings file named in ``IDP_CONFIG`` and then by
environment variables with the ``IDP_`` prefix (``IDP_ISSUER=https://...``). Values of
``IDP_*`` variables are parsed as JSON when they can be (``IDP_SIGNING_ALGORITHMS='["RS256"]'``,
``IDP_ACCESS_TOKEN_TTL=600``), except text settings (default a string, or listed as text below),
which are taken verbatim. See ``config/production.example.py`` for a production setup.
"""

# Issuer identifier (OpenID Connect Core §2): the https URL the relying parties see, without
# query or fragment. Plain http is accepted only on a loopback address (development). An https
# issuer also makes every cookie Secure.
ISSUER = "http://127.0.0.1:5000"

# Instance folder (text): where ``secrets.json`` and the default SQLite file live. ``None`` means
# Flask's instance folder: the checkout's ``instance/``, or ``<prefix>/var/idp-instance`` when installed.
INSTANCE_PATH = None

# SQLAlchemy URL (text), e.g. ``postgresql+psycopg://idp:...@db.internal/idp``. ``None`` means
# SQLite at ``<instance>/idp.sqlite3``. Create or upgrade the schema with ``idp db upgrade``.
DATABASE_URL = None

# Redis URL (text) for rate limits shared across instances. ``None`` keeps them in process memory,
# which is only correct for a single instance.
REDIS_URL = None

# Flask's secret (text; signs the CSRF tokens and the short-lived flow cookie). ``None`` means
# one is generated on first start into ``<instance>/secrets.json`` (mode 0600) and reused.
# Several instances behind a load balancer must share one value: set it explicitly.
SECRET_KEY = None
# Salt for pairwise subject identifiers (text; OpenID Connect Core §8.1); generated like
# SECRET_KEY. Changing it changes every pairwise ``sub``: never change it once clients use them.
PAIRWISE_SALT = None

# Messaging. "outbox" keeps messages in the database (``idp outbox list``).
MAIL_BACKEND = "outbox"  # "outbox" | "smtp"
MAIL_FROM = "eSanté <no-reply@esante.lu>"
SMTP_HOST = "127.0.0.1"
SMTP_PORT = 25
SMTP_SECURITY = "none"  # "none" | "starttls" | "tls"
SMTP_USERNAME = None  # text; no login when None
SMTP_PASSWORD = None  # text
SMTP_TIMEOUT = 10
SMS_BACKEND = "outbox"  # "outbox" | "http"
SMS_GATEWAY_URL = None  # text; JSON POST {"to", "from", "text"}; required with SMS_BACKEND "http"
SMS_GATEWAY_TOKEN = None  # text; sent as "Authorization: Bearer <token>"
SMS_SENDER = "eSante"
SMS_TIMEOUT = 10

# One-time codes sent at login (and in the activation wizard).
ONE_TIME_CODE_TTL = 300  # seconds; never more than 600
ONE_TIME_CODE_MAX_ATTEMPTS = 5  # wrong entries before a new code is needed
ONE_TIME_CODE_RESEND_COOLDOWN = 30  # seconds between two sends

# Activation letters.
ACTIVATION_CODE_TTL_DAYS = 90
# The activation wizard ("J'active mon compte"): how long one run of it may take, in seconds.
ACTIVATION_WIZARD_TTL = 30 * 60
# Version of the CGU patients accept; its texts are ``idp/data/cgu/<version>.<language>.txt``.
CGU_VERSION = "2024-1"

# Passwords: argon2id at OWASP's minimum (m=19 MiB, t=2, p=1) or stronger.
ARGON2_MEMORY_COST = 19456  # KiB
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
# Per-account throttling of wrong passwords: after PASSWORD_MAX_FAILURES failures in a row
# the account is locked for PASSWORD_LOCKOUT_SECONDS, doubling on each further lockout.
PASSWORD_MAX_FAILURES = 5
PASSWORD_LOCKOUT_SECONDS = 300

# Per-IP rate limits (Flask-Limiter syntax).
RATE_LIMIT_LOGIN = "20 per minute"
RATE_LIMIT_ONE_TIME_CODE = "20 per minute"
RATE_LIMIT_TOKEN = "600 per minute"
RATE_LIMIT_ACTIVATION = "20 per minute"  # activation code and "no activation code" requests

# Single sign-on sessions (server-side; the cookie holds only a random id).
SSO_COOKIE_NAME = "esante_sso"
SSO_IDLE_TIMEOUT = 30 * 60
SSO_ABSOLUTE_TIMEOUT = 12 * 60 * 60

# Token lifetimes, in seconds.
AUTHORIZATION_CODE_TTL = 60
ACCESS_TOKEN_TTL = 300
ID_TOKEN_TTL = 300
REFRESH_TOKEN_IDLE_TTL = 14 * 24 * 3600
REFRESH_TOKEN_ABSOLUTE_TTL = 90 * 24 * 3600

# Signing keys: one active key per algorithm; retired public keys stay published this long
# after their last use (at least the longest token lifetime).
SIGNING_ALGORITHMS = ["RS256", "ES256"]
SIGNING_KEY_RETENTION = 24 * 3600

# PKCE (RFC 7636) is required for every client unless turned off here; S256 only.
PKCE_REQUIRED_FOR_ALL_CLIENTS = True

# Languages of the pages; the first is the default.
LANGUAGES = ["fr", "de", "en"]

# Helpdesk contacts shown on pages and letters (from the patient guide).
HELPDESK_PHONE = "(+352) 27 12 50 18 33"
HELPDESK_EMAIL = "helpdesk@esante.lu"

# "Mes services eSanté": the services listed after login, in this order (the DSP first).
SERVICES = [
    {"name": "Dossier de Soins Partagé (DSP)", "url": "http://127.0.0.1:5001/", "description": "Votre dossier de soins partagé"},
    {"name": "MyDSP", "url": "https://www.esante.lu/mydsp", "description": "L'application mobile de votre DSP"},
]

# ``idp demo seed``: the client secret of the demo DSP viewer (client id "dsp-viewer"). The demo
# refuses to run on an https issuer, so this known secret never reaches a real deployment.
DEMO_DSP_VIEWER_SECRET = "dsp-viewer-demo-secret"
