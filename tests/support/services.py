"""Where the test suite's PostgreSQL and Redis are: scripts/test-services.sh starts them and
`make test` / scripts/run-tests.sh export their URLs.

    IDP_TEST_DATABASE_URL  SQLAlchemy URL, e.g. postgresql+psycopg://idp@127.0.0.1:PORT/idp_test
    IDP_TEST_REDIS_URL     e.g. redis://127.0.0.1:PORT/0

When a URL is missing, the helpers return None so a developer's plain `pytest` can skip
the tests that need it, except where the services are required: CI=true, or
IDP_REQUIRE_SERVICES=1 (set by scripts/run-tests.sh), or ``required=True``. Then they raise
``ServicesUnavailable`` so the tests fail loudly instead of silently skipping.
"""

from __future__ import annotations

import os

DATABASE_URL_VAR = "IDP_TEST_DATABASE_URL"
REDIS_URL_VAR = "IDP_TEST_REDIS_URL"

_TRUE = {"1", "true", "yes", "on"}


class ServicesUnavailable(RuntimeError):
    """A test service is required but its URL is not set."""


def services_required() -> bool:
    """True on CI (CI=true) or when IDP_REQUIRE_SERVICES=1."""
    return (
        os.environ.get("CI", "").strip().lower() in _TRUE
        or os.environ.get("IDP_REQUIRE_SERVICES", "").strip().lower() in _TRUE
    )


def _url(var: str, what: str, required: bool | None) -> str | None:
    value = os.environ.get(var, "").strip()
    if value:
        return value
    if required if required is not None else services_required():
        raise ServicesUnavailable(
            f"{var} is not set: the test {what} is required here "
            f"(CI / IDP_REQUIRE_SERVICES). Run the suite with `make test` "
            f"(or scripts/run-tests.sh), which starts PostgreSQL and Redis and sets it."
        )
    return None


def database_url(required: bool | None = None) -> str | None:
    """SQLAlchemy URL of the throwaway PostgreSQL database, or None when not set and not
    required (``required=None`` means: required on CI or with IDP_REQUIRE_SERVICES=1)."""
    return _url(DATABASE_URL_VAR, "PostgreSQL database", required)


def redis_url(required: bool | None = None) -> str | None:
    """URL of the throwaway Redis, or None when not set and not required."""
    return _url(REDIS_URL_VAR, "Redis", required)


def libpq_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+driver://`` URL as plain libpq (for psycopg.connect)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith("postgresql+"):
        return "postgresql://" + rest
    return url
