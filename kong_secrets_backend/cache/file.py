"""``token_cache: "file"``: a cache directory shared by the task processes of one host.

- One sealed entry per credential (:mod:`~kong_secrets_backend.cache.sealing`): only a holder of the
  credential can read it. Entries are written atomically (a 0600 temporary file, then ``rename``).
- The directory is created 0700; an existing one must belong to this user (it is tightened to 0700 if it is
  group- or world-accessible) and must not be a symlink.
- A ``filelock`` lock per credential: one process mints while the others wait, then read its entry.
- A corrupt, foreign or unreadable entry is a miss, and the next mint replaces it.
- Nothing here fails a resolution: when the directory is unusable the cache logs one WARNING and steps
  aside (each process then mints for itself, as with ``memory``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kong_secrets_backend.cache import sealing
from kong_secrets_backend.tokens import Token

log = logging.getLogger(__name__)

_STALE_AFTER = 86400.0  # entries and locks untouched for a day are pruned (rotated credentials leave them behind)
_POLL = 0.01


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kong-secrets-backend``, else ``~/.cache/kong-secrets-backend``."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "kong-secrets-backend"


class FileTokenCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._state_lock = threading.Lock()
        self._ready: bool | None = None  # None: not checked yet; False: unusable (warned)
        self._pruned = False
        self._warned_write = False

    def __repr__(self) -> str:
        return f"FileTokenCache(directory={str(self.directory)!r})"

    # -- the TokenCache protocol ------------------------------------------------------------------

    def get(self, key: str, secret: bytes) -> Token | None:
        if not self._usable():
            return None
        path = self._path(key, ".tok")
        try:
            blob = _read_private(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.debug("kong-secrets-backend: token cache entry %s unreadable: %s", path.name, type(exc).__name__)
            return None
        token = sealing.unseal(blob, key=key, secret=secret)
        if token is None:
            log.debug("kong-secrets-backend: ignoring token cache entry %s (not sealed for this credential)", path.name)
            return None
        return None if token.expired() else token

    def put(self, key: str, secret: bytes, token: Token) -> None:
        if not self._usable():
            return
        blob = sealing.seal(token, key=key, secret=secret)
        final = self._path(key, ".tok")
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, blob)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if not self._warned_write:  # once per process: the next resolutions would say the same
                self._warned_write = True
                log.warning(
                    "kong-secrets-backend: cannot write to the token cache directory %s (%s); tokens are not shared",
                    self.directory,
                    type(exc).__name__,
                )
            return
        self._prune_once()

    @contextmanager
    def lock(self, key: str, *, timeout: float, hold: float) -> Iterator[bool]:
        """The credential's lock file (flock, released by the kernel if the holder dies; ``hold`` is not needed)."""
        if not self._usable():
            yield True  # nothing to coordinate with: the caller mints for itself
            return
        from filelock import FileLock, Timeout

        lock = FileLock(self._path(key, ".lock"), mode=0o600, thread_local=False, poll_interval=_POLL)
        try:
            lock.acquire(timeout=max(0.0, timeout), blocking=timeout > 0)
            acquired = True
        except Timeout:
            acquired = False
        except OSError as exc:
            log.debug("kong-secrets-backend: token cache lock failed: %s", type(exc).__name__)
            yield True
            return
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception):
                    lock.release()

    def after_fork(self) -> None:
        self._state_lock = threading.Lock()

    # -- the directory ----------------------------------------------------------------------------

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{sealing.entry_name(key)}{suffix}"

    def _usable(self) -> bool:
        ready = self._ready
        if ready is not None:
            return ready
        with self._state_lock:
            if self._ready is None:
                problem = _prepare_directory(self.directory)
                if problem:
                    log.warning(
                        "kong-secrets-backend: token_cache 'file' cannot use %s (%s); "
                        "each process keeps its own tokens",
                        self.directory,
                        problem,
                    )
                self._ready = problem is None
            return self._ready

    def _prune_once(self) -> None:
        if self._pruned:
            return
        self._pruned = True
        cutoff = time.time() - _STALE_AFTER
        try:
            for path in self.directory.iterdir():
                if path.suffix in (".tok", ".tmp", ".lock") and path.lstat().st_mtime < cutoff:
                    with contextlib.suppress(OSError):
                        path.unlink()
        except OSError:
            pass


def _prepare_directory(directory: Path) -> str | None:
    """Create or check the cache directory; the reason it cannot be used, or None."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(directory)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror}"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "it is not a directory (symlinks are refused)"
    if st.st_uid != os.geteuid():
        return f"it belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    if st.st_mode & 0o077:
        try:
            os.chmod(directory, 0o700)
        except OSError as exc:
            return f"cannot make it private (0700): {exc.strerror}"
        log.info("kong-secrets-backend: token cache directory %s was accessible to others; now 0700", directory)
    return None


def _read_private(path: Path) -> bytes:
    """Read a cache entry: a regular file of this user, not a symlink, at most MAX_BLOB bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > sealing.MAX_BLOB:
            return b""
        return os.read(fd, sealing.MAX_BLOB + 1)
    finally:
        os.close(fd)
