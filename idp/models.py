"""Imports every domain module that owns a table, so ``db.metadata`` knows them all."""

from . import (  # noqa: F401
    account,
    activation,
    activation_letter,
    admin_account,
    audit,
    cgu_acceptance,
    client,
    consent,
    credential,
    helpdesk_request,
    messaging,
    one_time_code,
    replay_cache,
    signing_key,
    sso_session,
    token,
)
