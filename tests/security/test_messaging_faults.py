"""SMS gateway or SMTP server down during activation: a clear message, nothing consumed, retry works.

(The login's equivalents are in tests/flows/test_login.py.) The messaging backends are real
local servers (tests/flows/local_servers.py), so the failures are the ones the wire gives.
"""

import re
from datetime import timedelta

from idp import activation, clock, one_time_code
from idp.extensions import db
from tests.flows.local_servers import SmsGateway, closed_port
from tests.flows.test_activation import Wizard

NOT_SENT = "Le code n&#39;a pas pu être envoyé. Veuillez réessayer dans un instant."
MOBILE = "+352621555777"


def wizard_at_step_three(client, patients, account, code) -> Wizard:
    wizard = Wizard(client, patients)
    assert wizard.accept_cgu().status_code == 303
    assert wizard.code(account.matricule, code).status_code == 303
    assert wizard.password().status_code == 303
    return wizard


def current_wizard(client) -> activation.ActivationWizard:
    with client.session_transaction() as cookie:
        wizard_id = cookie["activation"]
    return db.session.get(activation.ActivationWizard, wizard_id)


def test_a_failing_sms_gateway_keeps_the_wizard_and_a_retry_activates(app, client, patients, pending):
    account, code = pending
    wizard = wizard_at_step_three(client, patients, account, code)
    with SmsGateway(status=502) as gateway:
        app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="gw-token")
        failed = wizard.send("sms", MOBILE)
        assert failed.status_code == 503 and NOT_SENT in failed.get_data(as_text=True)
        state = current_wizard(client)
        assert state.step == activation.STEP_CHANNEL and state.password_hash, "the password step is not lost"
        assert not state.channel_verified
        assert client.get("/activation/channel").status_code == 200
        gateway.status = 200  # repaired
        assert wizard.send("sms", MOBILE).status_code == 303
        sent = re.search(r"\b(\d{6})\b", gateway.received[-1]["json"]["text"]).group(1)
    assert wizard.verify(sent).status_code == 303
    finished = wizard.finish()
    assert finished.status_code == 303 and finished.headers["Location"].endswith("/activation/done")
    db.session.refresh(account)
    assert account.status == "active" and account.mobile == MOBILE


def test_an_unreachable_smtp_server_keeps_the_wizard_and_a_retry_works(app, client, patients, pending):
    account, code = pending
    wizard = wizard_at_step_three(client, patients, account, code)
    app.config.update(MAIL_BACKEND="smtp", SMTP_PORT=closed_port(), SMTP_TIMEOUT=2)
    failed = wizard.send("email", "marie@example.lu")
    assert failed.status_code == 503 and NOT_SENT in failed.get_data(as_text=True)
    assert current_wizard(client).step == activation.STEP_CHANNEL
    app.config.update(MAIL_BACKEND="outbox")  # the mail server is back (as the outbox here)
    assert wizard.send("email", "marie@example.lu").status_code == 303
    assert wizard.verify(patients.last_code("marie@example.lu")).status_code == 303


def test_a_failing_resend_keeps_the_code_already_sent(app, client, patients, pending):
    account, code = pending
    wizard = wizard_at_step_three(client, patients, account, code)
    assert wizard.send("sms", MOBILE).status_code == 303
    first = patients.last_code(MOBILE)
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    with SmsGateway(status=500) as gateway:
        app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=gateway.url)
        resent = wizard.post("/activation/channel/resend", page="/activation/channel")
        assert resent.status_code == 303
        assert NOT_SENT in client.get("/activation/channel").get_data(as_text=True)
    challenge = one_time_code.get(current_wizard(client).challenge_id)
    assert challenge.consumed_at is None and challenge.sends == 1, "the failed resend consumed nothing"
    app.config.update(SMS_BACKEND="outbox")
    assert wizard.verify(first).status_code == 303, "the code already sent still works"
