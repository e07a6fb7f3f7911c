"""RP-Initiated Logout 1.0: end the SSO session, then return to the client if it asked to."""

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import redirect, render_template, request
from flask_wtf.csrf import CSRFError

from .. import account as accounts, audit, backchannel_logout, client as clients, sso_session, token as tokens
from ..extensions import csrf, db
from ..subject import subject_for
from .routes import blueprint


@blueprint.route("/logout", methods=["GET", "POST"])
@csrf.exempt  # relying parties may POST here; the confirmation form checks CSRF itself
def logout():
    params = request.values
    hint = params.get("id_token_hint")
    hinted = tokens.decode_id_token_hint(hint) if hint else None
    if hint and hinted is None:  # not one of our ID tokens: an access token, a logout token, anything else
        return render_template("oauth/error.html", error="invalid_request", description="id_token_hint is not valid."), 400
    client = clients.get(params.get("client_id") or (hinted or {}).get("aud"))
    if params.get("client_id") and hinted and hinted["aud"] != params["client_id"]:
        return render_template("oauth/error.html", error="invalid_request", description="client_id does not match id_token_hint."), 400
    return_to = params.get("post_logout_redirect_uri")
    if return_to and (client is None or return_to not in client.post_logout_redirect_uris):
        return render_template("oauth/error.html", error="invalid_request", description="post_logout_redirect_uri is not registered."), 400

    current = sso_session.current()
    confirmed = False
    if request.method == "POST" and request.form.get("confirm") == "yes":
        try:
            csrf.protect()
            confirmed = True
        except CSRFError:
            confirmed = False
    hint_matches = bool(current and hinted and client and hinted.get("sub") == _subject(current, client))
    if current and not (confirmed or hint_matches):
        return render_template("oauth/logout_confirm.html", params=params, client=client)
    if current:
        tokens.revoke_access_tokens_of_session(current.id)
        audit.record(audit.Event.LOGOUT, account_id=current.account_id, client_id=client.client_id if client else None)
        sso_session.end(current, reason="logout")
        db.session.commit()
        backchannel_logout.send_queued()
    if return_to:
        parts = urlsplit(return_to)
        query = "&".join(filter(None, [parts.query, urlencode({"state": params["state"]}) if params.get("state") else ""]))
        return redirect(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")), code=303)
    return render_template("oauth/logged_out.html")


def _subject(session, client) -> str | None:
    account = accounts.get(session.account_id)
    return subject_for(account, client) if account else None
