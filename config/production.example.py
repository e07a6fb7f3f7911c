"""Example production settings: copy, adapt, and name the copy in ``IDP_CONFIG``.

    IDP_CONFIG=/etc/esante-idp/production.py idp serve --bind 10.0.0.5:8000

Order of precedence: ``config/default.py`` (every setting documented there), then this file,
then ``IDP_*`` environment variables. Secrets are not written here: they come from the
environment, and the start fails when one is missing. Only upper-case names are settings.
Settings not named here keep their defaults.
"""

import os


def _from_environment(name: str) -> str:
    """A secret read from ``IDP_<name>``; refusing to start without it beats running half-configured."""
    value = os.environ.get("IDP_" + name)
    if not value:
        raise RuntimeError(f"IDP_{name} must be set in the environment")
    return value


# --- identity ---------------------------------------------------------------------------------

# The issuer: https, no trailing slash. It is in every token and in the discovery document, so
# changing it later breaks every relying party. https also makes every cookie Secure
# (the flow cookie and the SSO cookie), which is why nothing else here mentions cookies.
ISSUER = "https://idp.esante.lu"

# Flask's secret and the pairwise salt must be identical on every instance behind the load
# balancer, so they are not generated per instance. Generate each once with
# ``python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`` and keep them in the
# secret store. Never change PAIRWISE_SALT: it would change every pairwise ``sub``.
SECRET_KEY = _from_environment("SECRET_KEY")
PAIRWISE_SALT = _from_environment("PAIRWISE_SALT")
# The key-encryption keys that seal the private signing keys in the database: never in the
# database or its backups. One or more secrets of >= 32 characters, comma-separated, the newest
# first (rotation: prepend, ``idp keys rewrap``, drop the old). ``KEY_ENCRYPTION_KEYS_FILE``
# names a file holding the same text instead, for secrets mounted as files.
KEY_ENCRYPTION_KEYS = _from_environment("KEY_ENCRYPTION_KEYS")

# One load balancer in front of the instances: trust its X-Forwarded-For / -Proto, so that rate
# limits, the audit log and the logs see the patient's address, not the balancer's.
TRUSTED_PROXY_COUNT = 1

# --- storage ------------------------------------------------------------------------------------

# PostgreSQL through psycopg 3, with the password in the URL, hence from the environment:
#   IDP_DATABASE_URL=postgresql+psycopg://idp:PASSWORD@db.internal:5432/idp?sslmode=verify-full
# Apply migrations with ``idp db upgrade`` before starting a new version. The audit log's
# append-only trigger holds only while the application's role does not own the tables: let a
# separate migration role own them and grant the application SELECT, INSERT, UPDATE, DELETE.
DATABASE_URL = _from_environment("DATABASE_URL")

# Redis shares the per-IP rate limits between instances. Without it each instance counts
# alone and an attacker gets the limit once per instance.
REDIS_URL = "redis://redis.internal:6379/0"

# --- messaging ---------------------------------------------------------------------------------

# E-mail (one-time codes, notices) through the relay, upgraded to TLS with STARTTLS on the
# submission port; the certificate is checked against the system CA store.
MAIL_BACKEND = "smtp"
MAIL_FROM = "eSanté <no-reply@esante.lu>"
SMTP_HOST = "smtp.esante.lu"
SMTP_PORT = 587
SMTP_SECURITY = "starttls"
SMTP_USERNAME = "idp"
SMTP_PASSWORD = _from_environment("SMTP_PASSWORD")
SMTP_TIMEOUT = 10  # seconds; a login waits at most this long for the relay

# SMS through the operator's HTTP gateway: JSON POST {"to", "from", "text"} with
# "Authorization: Bearer <token>"; any 2xx answer counts as sent.
SMS_BACKEND = "http"
SMS_GATEWAY_URL = _from_environment("SMS_GATEWAY_URL")
SMS_GATEWAY_TOKEN = _from_environment("SMS_GATEWAY_TOKEN")
SMS_SENDER = "eSante"  # sender name shown on the phone (11 characters at most for most networks)
SMS_TIMEOUT = 10  # seconds

# --- lifetimes (seconds) -------------------------------------------------------------------------

ONE_TIME_CODE_TTL = 300  # a one-time code by SMS or e-mail; more than 600 is refused at start
ACTIVATION_CODE_TTL_DAYS = 90  # the code in an activation letter, in days
SSO_IDLE_TIMEOUT = 30 * 60  # the SSO session ends after this long without use
SSO_ABSOLUTE_TIMEOUT = 12 * 60 * 60  # ... and after this long in any case
AUTHORIZATION_CODE_TTL = 60  # the code a client exchanges at /token
ACCESS_TOKEN_TTL = 300  # JWT access tokens cannot be recalled from offline verifiers: keep short
ID_TOKEN_TTL = 300
REFRESH_TOKEN_IDLE_TTL = 14 * 24 * 3600  # an unused refresh token lapses after two weeks
REFRESH_TOKEN_ABSOLUTE_TTL = 90 * 24 * 3600  # a refresh-token family ends 90 days after login
# Retired signing keys stay in the JWKS this long (at least the longest token lifetime above,
# plus the time relying parties cache the JWKS).
SIGNING_KEY_RETENTION = 24 * 3600

# --- pages -------------------------------------------------------------------------------------

# "Mes services eSanté" after login, the DSP first.
# "name" and "description": one text, or one per language ({"fr": …, "de": …, "en": …}).
SERVICES = [
    {"name": {"fr": "Dossier de Soins Partagé (DSP)", "de": "Gemeinsame Patientenakte (DSP)", "en": "Shared Care Record (DSP)"},
     "url": "https://dsp.esante.lu/",
     "description": {"fr": "Votre dossier de soins partagé", "de": "Ihre gemeinsame Patientenakte", "en": "Your shared care record"}},
    {"name": "MyDSP", "url": "https://www.esante.lu/mydsp",
     "description": {"fr": "L'application mobile de votre DSP", "de": "Die mobile App Ihrer Patientenakte (DSP)",
                     "en": "The mobile app of your shared care record (DSP)"}},
]
