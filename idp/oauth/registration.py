"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592)."""
