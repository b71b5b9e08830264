"""Airflow ``Stats`` metrics of the backend, under the ``kong_secrets_backend.`` prefix.

- ``kong_secrets_backend.mints`` (counter, tag ``flow``): tokens obtained from the identity provider (or signed);
- ``kong_secrets_backend.cache_hits`` (counter, tag ``flow``): resolutions served a cached token without a mint;
- ``kong_secrets_backend.errors.<category>`` (counter, tags ``category`` and ``reason``): failed resolutions,
  by the error's category (in the name too, because plain StatsD has no tags). The names are a fixed set, one
  per ``ErrorCategory`` (``errors.config``, ``errors.secret``, ``errors.secret_id``, ``errors.source``,
  ``errors.source_refused``, ``errors.identity_provider``, ``errors.identity_provider_refused``,
  ``errors.deadline``, ``errors.access_denied``, ``errors.internal``); the ``reason`` tag is the detailed reason
  when it belongs to the fixed vocabulary of ``errors.reason_tag``, else ``other``. Nothing outside these
  fixed sets (an identity provider's own error code, say) ever becomes a name or a tag value;
- ``kong_secrets_backend.mint_duration`` (timer, tag ``flow``): how long one mint took.

Airflow's metrics module is imported lazily, on the first event, and each call goes to whichever copy of it
this process initialised: the task SDK's in task processes, core's in the scheduler, triggerer and API server.
Nothing here ever raises: a broken metrics setup must not fail a resolution.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any

from kong_secrets_backend.errors import ErrorCategory, reason_tag

log = logging.getLogger(__name__)

PREFIX = "kong_secrets_backend."
MINTS = PREFIX + "mints"
CACHE_HITS = PREFIX + "cache_hits"
ERRORS = PREFIX + "errors"
MINT_DURATION = PREFIX + "mint_duration"

# Modules that hold Airflow's ``incr``/``timing`` functions, newest layout first.
_CORE_STATS = "airflow._shared.observability.metrics.stats"  # scheduler, triggerer, API server (3.2+)
_SDK_STATS = "airflow.sdk.observability.stats"  # task processes (3.2+); the documented path for 3rd parties
_LEGACY_STATS = "airflow.stats"  # 3.0 / 3.1

_warned = False


def mint(flow: str, seconds: float) -> None:
    """A token was minted for ``flow`` in ``seconds``."""
    tags = {"flow": flow}
    _emit("incr", MINTS, tags=tags)
    _emit("timing", MINT_DURATION, timedelta(seconds=max(0.0, seconds)), tags=tags)


def cache_hit(flow: str) -> None:
    """A resolution was served a cached token."""
    _emit("incr", CACHE_HITS, tags={"flow": flow})


def error(category: ErrorCategory | str, reason: str | None = None) -> None:
    """A resolution failed: counted as ``errors.<category>`` (``KongAuthError.category``), tagged with its
    ``reason`` only when that belongs to the fixed vocabulary. A value that is not a category counts as
    ``internal``."""
    name = error_name(category)
    _emit("incr", f"{ERRORS}.{name}", tags={"category": name, "reason": reason_tag(reason)})


def error_name(category: ErrorCategory | str) -> str:
    """The metric name segment of a category: always one of the ``ErrorCategory`` values."""
    try:
        return ErrorCategory(category).value
    except (ValueError, TypeError):
        return ErrorCategory.INTERNAL.value


def _emit(method: str, *args: Any, tags: dict[str, str]) -> None:
    global _warned
    try:
        stats = _stats_module()
        if stats is not None:
            getattr(stats, method)(*args, tags=tags)
    except Exception:
        if not _warned:  # once per process: a misconfigured StatsD must not flood the task log
            _warned = True
            log.warning("kong-secrets-backend: could not emit metric %s (metrics are skipped)", args[0], exc_info=True)


def _stats_module() -> Any:
    """The Airflow metrics module this process initialised (never imports Airflow's core on its own)."""
    core = sys.modules.get(_CORE_STATS)
    if core is not None and getattr(core, "_factory", None) is not None:
        return core
    if not _fallback:
        _fallback.append(_import_fallback())
    return _fallback[0]


_fallback: list[Any] = []


def _import_fallback() -> Any:
    import importlib

    try:
        return importlib.import_module(_SDK_STATS)
    except ImportError:
        pass
    try:  # Airflow 3.0/3.1: ``Stats`` is the module-level facade
        from airflow.stats import Stats  # type: ignore[attr-defined]

        return Stats
    except ImportError:
        return None


__all__ = ["CACHE_HITS", "ERRORS", "MINTS", "MINT_DURATION", "cache_hit", "error", "mint"]
