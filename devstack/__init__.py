"""The real local stack used by the tests and the demo: OpenBao, oidc-provider, HAProxy, an echo upstream.

Every server binds 127.0.0.1 on a free port and is stopped by PID.
"""
