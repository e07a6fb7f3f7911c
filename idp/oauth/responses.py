"""Delivering authorization responses to the client (query or form_post, with RFC 9207 ``iss``)."""

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import current_app, redirect, render_template

RESPONSE_MODES = ("query", "form_post")


def to_client(redirect_uri: str, params: dict, response_mode: str | None):
    """Send ``params`` to the client's redirect URI, adding ``iss`` (RFC 9207 §2)."""
    params = {k: v for k, v in params.items() if v is not None}
    params["iss"] = current_app.config["ISSUER"]
    parts = urlsplit(redirect_uri)
    if response_mode == "form_post":
        response = current_app.make_response(render_template("oauth/form_post.html", redirect_uri=redirect_uri, params=params))
        response.headers["Cache-Control"] = "no-store"
        # The form may post to the client's origin and nowhere else.
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'self'; form-action {parts.scheme}://{parts.netloc}; frame-ancestors 'none'; base-uri 'none'"
        )
        return response
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    response = redirect(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")), code=303)
    response.headers["Cache-Control"] = "no-store"
    return response
