"""Imports every domain module that owns a table, so ``db.metadata`` knows them all."""

from . import (  # noqa: F401
    account,
    activation_letter,
    admin_account,
    audit,
    client,
    consent,
    credential,
    messaging,
    one_time_code,
    replay_cache,
    signing_key,
    sso_session,
    token,
)
