"""``python -m kong_secrets_backend check CONN_ID ...``: the same as the ``kong-secrets-backend`` command."""

from __future__ import annotations

import sys

from kong_secrets_backend.cli import main

sys.exit(main())
