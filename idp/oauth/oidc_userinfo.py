"""The UserInfo endpoint (OpenID Connect Core §5.3): the claims the access token's scope and the
``claims`` request allow, for a token ``@require_oauth("openid")`` accepted (RFC 6750, RFC 9449)."""

from flask import jsonify

from .. import claims
from ..extensions import csrf, require_oauth
from ..subject import subject_for
from .rfc6750_bearer import current_access
from .routes import blueprint


@blueprint.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
@require_oauth("openid")
def userinfo():
    access = current_access()
    row = access.token
    # The client's own sub (Core §5.3.2: as in its ID token), not the access token's, which names
    # the patient for a resource server (RFC 9068 §6).
    document = {"sub": subject_for(access.account, access.client),
                **claims.release(access.account, access.client, row.scope, access.claims_request, "userinfo")}
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
