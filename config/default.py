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
# Key-encryption keys that seal the private signing keys and the admins' TOTP seeds in the database (text: one or more
# secrets of >= 32 characters, comma-separated; the first seals, all open). Generated like
# SECRET_KEY when unset; in production set it (or KEY_ENCRYPTION_KEYS_FILE, a file holding the
# same text) outside the database and its backups. Rotation: prepend a new secret, run
# ``idp keys rewrap``, then remove the old one.
KEY_ENCRYPTION_KEYS = None
KEY_ENCRYPTION_KEYS_FILE = None

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
ONE_TIME_CODE_RESEND_COOLDOWN = 30  # seconds between two sends for the same step, while the last code is unused
ONE_TIME_CODE_DAILY_FAILURES = 20  # wrong codes per account and 24 hours, all resends together
ONE_TIME_CODE_DAILY_SENDS = 10  # codes sent to an account and left unused, per 24 hours, all steps together

# Activation letters. Wrong codes typed for a matricule lock its activation for
# ACTIVATION_LOCKOUT_SECONDS after ten in a row, doubling on each further lockout; the letter
# itself stays valid (a guesser must not destroy a patient's only credential).
ACTIVATION_CODE_TTL_DAYS = 90
ACTIVATION_LOCKOUT_SECONDS = 900
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
# Per-account throttles (idp/throttle.py): the same limits per matricule, account or admin name
# whatever the addresses a burst comes from; in Redis when REDIS_URL is set, else in memory.
RATE_LIMIT_LOGIN_PER_ACCOUNT = "10 per minute"  # password posts for one matricule
RATE_LIMIT_ONE_TIME_CODE_PER_ACCOUNT = "10 per minute"  # one-time codes entered for one account
RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT = "5 per hour"  # forgotten-password requests for one matricule
RATE_LIMIT_DELEGATION_LOOKUP_PER_ACCOUNT = "10 per minute; 30 per day"  # assistant look-ups by one account
RATE_LIMIT_ADMIN_LOGIN_PER_ACCOUNT = "10 per minute"  # admin logins for one admin name
# When Redis (REDIS_URL) is unreachable, the per-IP limits fall back to each instance's memory:
# they keep holding (per instance) and logins keep working; they return to Redis once it answers.
RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True

# Request size bounds, refused before parsing (413, 414, 431), in bytes. The body bound covers
# every form and JSON document (a signed SAML response is the largest legitimate one) and any
# JWT posted in them; Werkzeug also bounds each field and the number of fields of multipart
# forms. The URL bound covers ``id_token_hint`` and other GET parameters, the header bound
# bearer tokens and DPoP proofs.
MAX_CONTENT_LENGTH = 256 * 1024
MAX_FORM_MEMORY_SIZE = 64 * 1024
MAX_FORM_PARTS = 100
MAX_URL_LENGTH = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
# Seconds a client is told to wait (``Retry-After``) when the database is unreachable (503).
DATABASE_UNAVAILABLE_RETRY_AFTER = 30

# Single sign-on sessions (server-side; the cookie holds only a random id).
SSO_COOKIE_NAME = "esante_sso"
SSO_IDLE_TIMEOUT = 30 * 60
SSO_ABSOLUTE_TIMEOUT = 12 * 60 * 60

# Assistants DSP: exact-matricule look-ups of an assistant (account pages and the delegation
# API), per IP (Flask-Limiter syntax). Each look-up tells whether a matricule exists.
RATE_LIMIT_DELEGATION_LOOKUP = "10 per minute"
# Adding an assistant through the delegation API needs a login (password and one-time code)
# at most this many seconds old; older tokens get RFC 9470's insufficient_user_authentication.
DELEGATION_REAUTHENTICATION_MAX_AGE = 300

# Passkeys (WebAuthn Level 3, idp/passkey.py). PASSKEY_RP_ID (text): the relying party id, the
# issuer's host when None; it may name a parent domain of that host (``esante.lu`` for
# ``login.esante.lu``), so passkeys keep working if the login moves to a sibling host. Only the
# issuer's origin may answer a ceremony, plus PASSKEY_EXTRA_ORIGINS (exact ``scheme://host[:port]``
# values, e.g. a second login host under the same parent domain). A challenge is single use and
# lives PASSKEY_CHALLENGE_TTL seconds (kept in the database: every instance sees it). Adding a
# passkey needs a login at most PASSKEY_REAUTHENTICATION_MAX_AGE seconds old; an account or admin
# holds at most PASSKEY_MAX_PER_OWNER passkeys. RATE_LIMIT_PASSKEY: per address, on the ceremonies.
PASSKEY_RP_ID = None
PASSKEY_RP_NAME = "eSanté"
PASSKEY_EXTRA_ORIGINS = []
PASSKEY_CHALLENGE_TTL = 300
PASSKEY_REAUTHENTICATION_MAX_AGE = 300
PASSKEY_MAX_PER_OWNER = 10
RATE_LIMIT_PASSKEY = "30 per minute"
# Admins: ADMIN_REQUIRE_PASSKEY refuses password + TOTP to admins who have a passkey, and sends
# those who have none to register one before any other admin page. ADMIN_PASSKEY_AAGUIDS, when
# not empty, lets admins register only authenticators of these models (AAGUIDs, e.g.
# "cb69481e-8ff7-4039-93ec-0a2729a154a8"), proven by a verified attestation statement whose
# certificate chain ends at one of ADMIN_PASSKEY_ATTESTATION_ROOTS (PEM certificates, text; the
# vendors' roots from the FIDO Metadata Service). Patients' passkeys ask no attestation ("none").
ADMIN_REQUIRE_PASSKEY = False
ADMIN_PASSKEY_AAGUIDS = []
ADMIN_PASSKEY_ATTESTATION_ROOTS = None

# Admin sessions (server-side, idp/admin_session.py), in seconds: unused, and in any case.
ADMIN_SESSION_IDLE_TIMEOUT = 15 * 60
ADMIN_SESSION_ABSOLUTE_TIMEOUT = 8 * 3600

# Audit log retention in days: ``idp audit purge`` (run it daily) deletes older events. At least
# 1096 days (3 years, EHDS Art. 9); the command refuses less.
AUDIT_RETENTION_DAYS = 1096
# Housekeeping: ``idp housekeeping purge`` (run it daily) deletes short-lived rows past use. These
# are how long, in seconds, finished rows are kept first (0 or more; ``idp/housekeeping.py`` says
# what each rule keeps whatever the window): tokens after their access token and refresh-token
# family expired (at least SSO_ABSOLUTE_TIMEOUT; authorization codes the longest token lifetime
# more), SSO sessions after they ended or timed out, back-channel logouts after delivery or
# abandonment, and the lockout of a matricule without an account after it ended (long: a real
# account keeps its backoff until a right password).
HOUSEKEEPING_TOKEN_RETENTION = 7 * 24 * 3600
HOUSEKEEPING_SSO_SESSION_RETENTION = 30 * 24 * 3600
HOUSEKEEPING_LOGOUT_DELIVERY_RETENTION = 7 * 24 * 3600
HOUSEKEEPING_UNKNOWN_LOGIN_RETENTION = 90 * 24 * 3600

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
# Seconds each worker keeps the signing and verification keys it read, and its JWKS and
# discovery answers (0: read them on every request). ``idp keys rotate`` publishes new keys this
# long before they sign (pre-publication), so every instance's JWKS has a key before any token
# does; tokens verify throughout (retired keys stay published, unknown kids are looked up at once).
SIGNING_KEY_CACHE_SECONDS = 5
# Seconds each worker keeps a client it read for the OAuth endpoints (0: read it on every
# request). A client disabled or changed elsewhere (another worker or instance, the CLI) stops
# working with its old settings within this delay; in the worker process that changed it, at once.
CLIENT_CACHE_SECONDS = 5
# Names a self-registered client (RFC 7591) may take only with an admin's approval
# (``idp clients approve``): compared without case, accents, spaces or punctuation, anywhere
# in the name ("Agence e-Sante — DSP" matches "Agence eSanté"); a name with letters of another script than Latin waits too.
PROTECTED_CLIENT_NAMES = ["Agence eSanté", "eSanté", "DSP officiel", "Dossier de Soins Partagé", "MyGuichet", "LuxTrust",
                          "CNS", "Ministère de la Santé"]

# PKCE (RFC 7636) is required for every client unless turned off here; S256 only.
PKCE_REQUIRED_FOR_ALL_CLIENTS = True
# Optional protocol features (``idp/oauth/``), as node-oidc-provider's ``features``: each is
# ``{"enabled": ..., options}``. Turning one off (``"enabled": False``) removes its endpoint, grant
# or extension and its discovery metadata; the others keep working. A settings file or a test
# names only what it changes (``FEATURES = {"dpop": {"nonce_required": True}}``): the rest keeps
# these defaults. As a variable: ``IDP_FEATURES__dpop__enabled=false``.
FEATURES = {
    # Pushed authorization requests (RFC 9126), endpoint /par. "ttl": seconds a request_uri waits
    # for the browser (1 to 599, as FAPI 2.0 §5.3.2.2 wants); "flow_ttl": seconds that browser may come back with it (login, one-time
    # code, consent); "required_for_all_clients": every client must push (otherwise per client:
    # require_pushed_authorization_requests, or the FAPI 2.0 profile). Off: /par is gone and
    # /authorize refuses request_uri; FAPI 2.0 clients then get no code at all.
    "par": {"enabled": True, "ttl": 90, "flow_ttl": 1800, "required_for_all_clients": False},
    # DPoP (RFC 9449): tokens and codes bound to a key the client holds. "proof_max_age": seconds
    # a proof's iat may be from now; "nonce_lifetime": seconds a server nonce lives;
    # "nonce_required": proofs must carry one (§8; prevents proofs made in advance). Off: DPoP
    # headers are ignored at /token and /par and every new token is a Bearer token, but FAPI 2.0
    # clients get none; tokens bound before still need their proof.
    "dpop": {"enabled": True, "proof_max_age": 60, "nonce_lifetime": 300, "nonce_required": False},
    # Token exchange (RFC 8693): an assistant's token becomes one for a patient they assist.
    "token_exchange": {"enabled": True},
    # OpenID Connect Back-Channel Logout 1.0: logout tokens POSTed to the clients' registered
    # backchannel_logout_uri. "timeout": seconds per delivery; "backoff": first retry delay
    # (doubling, capped at an hour); "retry_for": seconds a relying party that does not answer is
    # retried before giving up; "internal_hosts": host names (exact, case-insensitive) whose URI may
    # resolve to internal addresses, for relying parties inside the operator's network (every other
    # URI must be https on a public address, or loopback for a client whose redirect URIs are all on
    # loopback; checked at registration and at each delivery, idp/outbound_address.py). Off:
    # nothing is queued or sent.
    "backchannel_logout": {"enabled": True, "timeout": 2, "backoff": 30, "retry_for": 24 * 3600, "internal_hosts": []},
    # Dynamic client registration and management (RFC 7591, RFC 7592), endpoint /register.
    "dynamic_registration": {"enabled": True},
    # Token introspection for resource servers (RFC 7662), endpoint /introspect.
    "introspection": {"enabled": True},
    # The client credentials grant (RFC 6749 §4.4): machine clients' tokens for themselves.
    "client_credentials": {"enabled": True},
}

# Languages of the pages; the first is the default.
LANGUAGES = ["fr", "de", "en"]
# Times on the pages (the patient's "Traçabilité") are Luxembourg time; the database keeps UTC.
BABEL_DEFAULT_TIMEZONE = "Europe/Luxembourg"

# Helpdesk contacts shown on pages and letters (from the patient guide).
HELPDESK_PHONE = "(+352) 27 12 50 18 33"
HELPDESK_EMAIL = "helpdesk@esante.lu"

# "Mes services eSanté": the services listed after login, in this order (the DSP first). "name"
# and "description" are either one text or one per language of LANGUAGES (the first language
# stands in for a missing one); "{SETTING}" in "url" is that setting's value, so the demo's DSP
# link follows DEMO_DSP_VIEWER_URL.
SERVICES = [
    {
        "name": {"fr": "Dossier de Soins Partagé (DSP)", "de": "Gemeinsame Patientenakte (DSP)", "en": "Shared Care Record (DSP)"},
        "url": "{DEMO_DSP_VIEWER_URL}/",
        "description": {"fr": "Votre dossier de soins partagé : documents, ligne de vie, assistants et traçabilité",
                        "de": "Ihre gemeinsame Patientenakte: Dokumente, Lebenslinie, Assistenten und Zugriffsprotokoll",
                        "en": "Your shared care record: documents, timeline, assistants and access log"},
    },
    {
        "name": "MyDSP",
        "url": "https://www.esante.lu/mydsp",
        "description": {"fr": "L'application mobile de votre DSP", "de": "Die mobile App Ihrer Patientenakte (DSP)",
                        "en": "The mobile app of your shared care record (DSP)"},
    },
]

# Where the demo relying parties run (``python -m rp_demo.launcher``, ``make run``): the DSP
# viewer's base URL (its redirect and post-logout URIs) and the DSP API's identifier, the
# audience its access tokens must carry (RFC 9068 §3).
DEMO_DSP_VIEWER_URL = "http://127.0.0.1:5001"
DEMO_DSP_API_AUDIENCE = "http://127.0.0.1:5002"
# Development only: the page /dev/outbox lists the outbox's messages (the demo's one-time
# codes). It needs both messaging backends on "outbox"; an https issuer refuses to start with it.
DEMO_OUTBOX_PAGE = False

# Federation (idp/federation/): upstream identity providers patients may log in or activate with.
# "enabled": False turns every upstream off (the buttons disappear; password login stays).
# "sp_key_file"/"sp_cert_file" (text paths): our SAML service provider's signing key and
# certificate; ``None`` generates them on first start into ``<instance>/saml/`` (mode 0600).
# Several instances must share them: set both paths in production.
# Each upstream: "protocol" ("saml"), "label", "metadata_url" (the upstream's SAML metadata, fetched
# lazily and cached "metadata_cache_seconds"), "attributes" (our vocabulary -> the upstream's
# SAML attribute names: OID URIs for the LDAP ones, e.g. urn:oid:2.5.4.42 givenName), "acr" (the level assumed when the assertion names no eIDAS level),
# "amr_by_device" (value of the "device" attribute -> RFC 8176 amr), "allow_unsolicited"
# (IdP-initiated responses), "step_up" (may raise a session's level of assurance).
# The defaults point at the sandbox stand-ins (``idp sandbox run myguichet|luxtrust``);
# production points at the real metadata instead.
FEDERATION = {
    "enabled": True,
    "sp_key_file": None,
    "sp_cert_file": None,
    "metadata_cache_seconds": 3600,
    "upstreams": {
        "myguichet": {
            "protocol": "saml",
            "label": "MyGuichet.lu",
            "metadata_url": "http://127.0.0.1:5010/saml/metadata",
            "attributes": {"national_id": "nationalIdentifier", "given_name": "urn:oid:2.5.4.42", "family_name": "urn:oid:2.5.4.4",
                           "email": "urn:oid:0.9.2342.19200300.100.1.3", "phone": "mobile", "device": "authnDevice"},
            "acr": "http://eidas.europa.eu/LoA/substantial",
            "amr_by_device": {"token": "hwk", "mobile": "hwk", "smartcard": "sc", "eid": "sc"},
            "allow_unsolicited": True,
            "step_up": False,
        },
        "luxtrust": {
            "protocol": "saml",
            "label": "LuxTrust",
            "metadata_url": "http://127.0.0.1:5011/saml/metadata",
            "attributes": {"given_name": "urn:oid:2.5.4.42", "family_name": "urn:oid:2.5.4.4", "device": "authnDevice"},
            "acr": "http://eidas.europa.eu/LoA/substantial",
            "amr_by_device": {"token": "hwk", "mobile": "hwk", "smartcard": "sc", "eid": "sc"},
            "allow_unsolicited": False,
            "step_up": True,
        },
    },
}

# Operations (``idp/observability.py``). Logs go to standard error, one JSON object a line
# ("json") or plain text ("text"), with the request id; passwords, codes, tokens and full
# matricules are masked. ACCESS_LOG logs one line per request (health probes at DEBUG only).
LOG_FORMAT = "json"  # "json" | "text"
LOG_LEVEL = "INFO"
ACCESS_LOG = True
# Who may read /metrics (Prometheus): client addresses in these networks; others get 404.
METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
# Number of reverse proxies / load balancers in front of the instances whose X-Forwarded-For,
# -Proto, -Host and -Port headers are trusted (client address for rate limits, audit and logs).
# 0 when clients connect directly; never more than the proxies really there (spoofing).
TRUSTED_PROXY_COUNT = 0
