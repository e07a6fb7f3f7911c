"""Sandbox stand-ins for MyGuichet and LuxTrust (pysaml2 + xmlsec1), for development and tests only.

``app.create_sandbox_app`` builds one; ``idp sandbox run myguichet|luxtrust`` serves it.
"""
