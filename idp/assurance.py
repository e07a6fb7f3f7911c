"""eIDAS levels of assurance as ``acr`` values, and how a session is raised to a higher one.

The levels of Commission Implementing Regulation (EU) 2015/1502, as the ``acr`` URIs the eIDAS
nodes use: low < substantial < high. Password + one-time code is substantial (DESIGN.md). A
relying party's ``acr_values`` (OpenID Connect Core §3.1.2.1) that the session does not reach
call for a step-up: the federation layer registers the means (:func:`register_step_up`), so the
authorization endpoint asks for it without knowing the upstreams.
"""

from typing import Callable

from flask import Flask, current_app
from flask.typing import ResponseReturnValue

ACR_LOW = "http://eidas.europa.eu/LoA/low"
ACR_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
ACR_HIGH = "http://eidas.europa.eu/LoA/high"
ACR_VALUES = [ACR_LOW, ACR_SUBSTANTIAL, ACR_HIGH]

# (account id, the acr to reach, where to come back) -> a response that starts the step-up, or
# None when no means of this patient can reach that level.
StepUp = Callable[[int, str, str], ResponseReturnValue | None]
_STEP_UP_EXTENSION = "idp.step_up"


def acr_rank(acr: str | None) -> int:
    """Position in the eIDAS order low < substantial < high; -1 for anything else."""
    return ACR_VALUES.index(acr) if acr in ACR_VALUES else -1


def minimum_acr(acr_values: str | None) -> str | None:
    """The lowest eIDAS level among a relying party's ``acr_values`` (each is acceptable to it)."""
    known = [value for value in (acr_values or "").split() if value in ACR_VALUES]
    return min(known, key=acr_rank) if known else None


def register_step_up(app: Flask, step_up: StepUp) -> None:
    app.extensions[_STEP_UP_EXTENSION] = step_up


def step_up_response(account_id: int, required_acr: str, next_url: str) -> ResponseReturnValue | None:
    """Where to send the patient to reach ``required_acr``; None when nothing can."""
    step_up = current_app.extensions.get(_STEP_UP_EXTENSION)
    return step_up(account_id, required_acr, next_url) if step_up else None
