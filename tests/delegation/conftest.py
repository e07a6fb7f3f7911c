"""A family for the delegation tests: a parent (adult) and a child (minor), and a relying party
allowed token exchange. Time is fixed so the child's 18th birthday is known."""

from datetime import date, timedelta

import pytest

from idp import clock, client as clients, delegation as delegations, token as tokens
from idp.extensions import db
from tests.oauth.conftest import oidc, register  # noqa: F401  (the code-flow driver fixture)

DSP_CALLBACK = "https://dsp.example.lu/callback"
EXCHANGE_SCOPE = "openid profile email offline_access delegations assisted_patients"


@pytest.fixture
def parent(patients):
    return patients.create(given_name="Hector", family_name="Doe", birth="19800105", email="hector@example.lu", mobile="+352621000001")


@pytest.fixture
def child(patients):
    """Ten years old today."""
    born = clock.today().replace(year=clock.today().year - 10, month=3, day=15)
    return patients.create(given_name="Rita", family_name="Doe", birth=born.strftime("%Y%m%d"), email="rita@example.lu",
                           mobile="+352621000002", password="Ecole2026okay")


@pytest.fixture
def viewer(app):
    """The DSP viewer: first party, public subjects, allowed token exchange."""
    return register(name="DSP viewer", redirect_uris=[DSP_CALLBACK], first_party=True, scope=EXCHANGE_SCOPE,
                    grant_types=["authorization_code", "refresh_token", clients.TOKEN_EXCHANGE])


@pytest.fixture
def pharmacy(app):
    """A third party with pairwise subjects, also allowed token exchange."""
    return register(name="Pharmacie", redirect_uris=["https://pharmacy.example.com/callback"], scope=EXCHANGE_SCOPE,
                    grant_types=["authorization_code", clients.TOKEN_EXCHANGE])


def assist(owner, assistant, **options) -> delegations.Delegation:
    """``assistant`` becomes an Assistant DSP of ``owner``'s record, created by the owner."""
    found = delegations.grant(owner.account, assistant.account, created_by=owner.account, **options)
    db.session.commit()
    return found


def access_token(rp, patient, scope: str = EXCHANGE_SCOPE, logged_in_ago: timedelta = timedelta(0)) -> str:
    """An access token of the patient's own, as the code flow would have issued it to ``rp`` after a
    login (password and one-time code) ``logged_in_ago``."""
    context = tokens.AuthContext(auth_time=clock.now() - logged_in_ago, acr="http://eidas.europa.eu/LoA/substantial",
                                 amr=["pwd", "otp", "sms", "mfa"])
    response, _ = tokens.issue(rp, patient.account, scope, grant_type="authorization_code", context=context)
    db.session.commit()
    return response["access_token"]


def majority_of(patient) -> date:
    return delegations.majority_date(patient.account.birth_date)


def days_until(day: date) -> timedelta:
    return day - clock.today()
