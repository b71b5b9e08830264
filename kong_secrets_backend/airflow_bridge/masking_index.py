"""An index inside Airflow's secrets masker: its cost per new secret does not grow with the secrets it holds.

Airflow's ``SecretsMasker.add_mask`` adds ``re.escape(secret)`` to the set ``masker.patterns`` and recompiles
``masker.replacer = re.compile("|".join(masker.patterns))`` on every new secret; every string it redacts goes
through ``masker.replacer.sub(replacement, text)``. A process that mints a token every few minutes therefore
recompiles an ever longer regex on each mint (and CPython's ``re`` cache keeps up to 512 of them alive), and
every log line is matched against all of them (docs/masking.md has the measurements).

This module gives the masker instance two things instead, by switching its class to a subclass of its own
class (:func:`install`) that adds two properties:

- ``patterns`` becomes an :class:`IndexedPatterns` set: a secret with a run of at least
  :data:`TOKEN_MIN_LENGTH` *token characters* (those of an OAuth bearer token, RFC 6750 ``b64token``, plus
  ``%`` and ``=`` so that URL-encoded forms qualify) goes into a :class:`SecretIndex`, filed under its longest
  such run, and not into the set the regex is joined from. That covers every token, the whole ``conn.extra``
  JSON the task SDK masks on every connection it returns (filed under the token it holds), ``"Bearer
  <token>"``, client secrets, Kong JWT secrets and PEM private keys. Only secrets without such a run (short
  passwords) stay regex alternatives.
- ``replacer`` becomes a :class:`Replacer` whose ``sub`` masks the union of what the regex matches and what
  the index finds: one fixed regex finds the runs of token characters in the text, each run is scanned for
  the first 16 characters of the anchors, and each anchor found is checked against the secrets filed under
  it. Adding a secret is O(1); redacting a string is O(its length), whatever the number of secrets. (While
  it holds at most :data:`SMALL_INDEX` secrets, a task process's few, it matches them with one small regex
  compiled at the next redaction instead: see :class:`SecretIndex`.)

Masking is exact: every occurrence of every indexed secret is masked, as the regex did; where a regex match
and an index match overlap, the union is masked. Nothing is ever forgotten (a token costs a few hundred bytes
here), so an expired token stays masked.

The hook relies on the masker's shape, which is not Airflow's public API. :func:`install` first checks the
attributes and then runs a probe on a scratch instance of the same class; if anything differs it changes
nothing and returns the reason, and the caller falls back to Airflow's masker as it is.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

SMALL_INDEX = 32  # up to this many secrets, the index matches them with one (small) regex
TOKEN_MIN_LENGTH = 16  # the shortest run a secret is filed under (and the prefix length of the lookup)
_TOKEN_CHARS = r"A-Za-z0-9\-._~+/=%"
_RUN = re.compile(rf"[{_TOKEN_CHARS}]{{{TOKEN_MIN_LENGTH},}}")  # the maximal runs of token characters
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)  # re.escape prefixes a backslash; nothing else


def unescape(pattern: str) -> str:
    """The secret a ``re.escape``-d pattern was made from."""
    return _UNESCAPE.sub(r"\1", pattern)


class SecretIndex:
    """Secrets found by a 16-character lookup instead of a regex alternative, in O(length of the text).

    Each secret is filed under its *anchor*: its longest run of token characters (the last of equally long
    ones, so that the constant ASN.1 header on a PEM's first line is not chosen). A token is its own anchor;
    the ``conn.extra`` JSON that holds a token is filed under that token. Redacting a text finds every
    occurrence of every anchor (the runs of token characters in the text, each scanned for the anchors' first
    16 characters) and masks each secret filed under it that the text holds at that place.

    While it holds at most ``small`` secrets (a task process: a few tokens and credentials), it matches them
    with one regex instead, compiled at the first redaction after a change (so once per resolution, not once
    per secret): for a handful of secrets that is cheaper per redacted string than the scan, and compiling it
    stays cheap because it never has more than ``small`` alternatives.
    """

    def __init__(self, small: int = SMALL_INDEX) -> None:
        self._small_limit = small
        self._small: re.Pattern[str] | None = None  # the regex of every secret, while there are few
        self._secrets: set[str] = set()
        self._by_prefix: dict[str, tuple[str, ...]] = {}  # an anchor's first 16 characters -> anchors
        self._owners: dict[str, tuple[tuple[str, int], ...]] = {}  # anchor -> (secret, the anchor's offset in it)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, secret: object) -> bool:
        return secret in self._secrets

    def values(self) -> list[str]:
        """Every secret held (for handing them back to a plain masker)."""
        with self._lock:
            return list(self._secrets)

    def offer(self, secret: str) -> bool:
        """Hold ``secret`` if it has a run of at least 16 token characters; False leaves it to the regex."""
        if secret in self._secrets:
            return True
        runs = [(m.end() - m.start(), m.start()) for m in _RUN.finditer(secret)]
        if not runs:
            return False
        length, offset = max(runs)  # the longest, and the last of equally long ones
        anchor = secret[offset : offset + length]
        with self._lock:
            if secret not in self._secrets:
                if anchor not in self._owners:
                    prefix = anchor[:TOKEN_MIN_LENGTH]
                    self._by_prefix[prefix] = (*self._by_prefix.get(prefix, ()), anchor)
                self._owners[anchor] = (*self._owners.get(anchor, ()), (secret, offset))
                self._secrets.add(secret)
                self._small = None
        return True

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where held secrets occur in ``text`` (possibly overlapping)."""
        spans: list[tuple[int, int]] = []
        if not self._secrets:
            return spans
        if len(self._secrets) <= self._small_limit:
            small = self._small or self._compile_small()
            return [m.span() for m in small.finditer(text)]
        by_prefix, owners, k = self._by_prefix, self._owners, TOKEN_MIN_LENGTH
        for run in _RUN.finditer(text):
            value, base = run.group(), run.start()
            hits = [i for i in range(len(value) - k + 1) if value[i : i + k] in by_prefix]  # (the hot loop)
            for i in hits:
                for anchor in by_prefix[value[i : i + k]]:
                    if not value.startswith(anchor, i):
                        continue
                    for secret, offset in owners[anchor]:
                        at = base + i - offset
                        if at >= 0 and text.startswith(secret, at):
                            spans.append((at, at + len(secret)))
        return spans

    def _compile_small(self) -> re.Pattern[str]:
        with self._lock:
            longest_first = sorted(self._secrets, key=len, reverse=True)
            self._small = re.compile("|".join(re.escape(secret) for secret in longest_first))
            return self._small


class IndexedPatterns(set[str]):
    """``masker.patterns``: a pattern whose secret the index takes never reaches the joined regex."""

    def __init__(self, patterns: Iterable[str] = (), index: SecretIndex | None = None) -> None:
        super().__init__()
        self.index = index if index is not None else SecretIndex()
        for pattern in patterns:
            self.add(pattern)

    def add(self, pattern: str) -> None:
        if isinstance(pattern, str) and self.index.offer(unescape(pattern)):
            return
        super().add(pattern)

    def __contains__(self, pattern: object) -> bool:
        if super().__contains__(pattern):
            return True
        return isinstance(pattern, str) and unescape(pattern) in self.index


class Replacer:
    """``masker.replacer``: Airflow calls ``sub(replacement, text)`` and tests its truth."""

    def __init__(self, regex: re.Pattern[str] | None, index: SecretIndex) -> None:
        self.regex = regex
        self.index = index

    def __bool__(self) -> bool:
        return self.regex is not None or len(self.index) > 0

    def sub(self, replacement: str, text: str, count: int = 0) -> str:
        spans = self.index.spans(text)
        if not spans:
            return self.regex.sub(replacement, text, count) if self.regex is not None else text
        if self.regex is not None:
            spans.extend(m.span() for m in self.regex.finditer(text))
        spans.sort()
        out: list[str] = []
        position = 0
        start, end = spans[0]
        for s, e in spans[1:]:
            if s <= end:  # overlapping or adjacent: one mask
                end = max(end, e)
                continue
            out += [text[position:start], replacement]
            position, start, end = end, s, e
        out += [text[position:start], replacement, text[end:]]
        return "".join(out)


# -- the masker hook ------------------------------------------------------------------------------

_PATTERNS = "_ksb_patterns"
_REGEX = "_ksb_regex"
_REPLACER = "_ksb_replacer"
_subclasses: dict[type, type] = {}


def _get_patterns(self: Any) -> IndexedPatterns:
    return self.__dict__[_PATTERNS]


def _set_patterns(self: Any, value: Iterable[str]) -> None:
    # Airflow's reset_masker assigns a new empty set: start a new index too (a reset forgets everything).
    patterns = IndexedPatterns(value)
    self.__dict__[_PATTERNS] = patterns
    self.__dict__[_REPLACER] = Replacer(self.__dict__.get(_REGEX), patterns.index)


def _get_replacer(self: Any) -> Replacer:
    return self.__dict__[_REPLACER]


def _set_replacer(self: Any, value: Any) -> None:
    if isinstance(value, Replacer):
        value = value.regex
    if isinstance(value, re.Pattern) and not value.pattern:
        value = None  # every pattern went to the index: "|".join of nothing would match everywhere
    self.__dict__[_REGEX] = value
    self.__dict__[_REPLACER] = Replacer(value, self.__dict__[_PATTERNS].index)


def indexed_class(base: type) -> type:
    """The subclass of ``base`` (Airflow's masker class) with the indexed ``patterns`` and ``replacer``."""
    cls = _subclasses.get(base)
    if cls is None:
        cls = type(
            base.__name__,
            (base,),
            {
                "__module__": __name__,
                "__doc__": f"{base.__doc__ or ''} (token index added by kong-secrets-backend)",
                "patterns": property(_get_patterns, _set_patterns),
                "replacer": property(_get_replacer, _set_replacer),
            },
        )
        _subclasses[base] = cls
    return cls


def is_installed(masker: object) -> bool:
    return type(masker) in _subclasses.values()


def _shape_problem(masker: object) -> str | None:
    base = type(masker)
    state = getattr(masker, "__dict__", None)
    if not isinstance(state, dict):
        return "the masker has no instance dictionary"
    if not isinstance(state.get("patterns"), set):
        return "masker.patterns is not a set"
    replacer = state.get("replacer", getattr(base, "replacer", None))
    if replacer is not None and not isinstance(replacer, re.Pattern):
        return "masker.replacer is not a compiled regex"
    for name in ("add_mask", "redact", "reset_masker"):
        if not callable(getattr(masker, name, None)):
            return f"masker.{name} is missing"
    if isinstance(getattr(base, "patterns", None), property) or isinstance(getattr(base, "replacer", None), property):
        return "masker.patterns or masker.replacer is already a property"
    return None


def _probe(base: type) -> str | None:
    """Run the hook on a scratch instance of ``base``: the real masker is touched only if this passes."""
    token = "probe-token.AbC123_~xYz-0987654321"
    blob = '{"Authorization": "Bearer ' + token + '"}'
    other = "probe secret with spaces, and (regex) chars!"
    try:
        scratch = base()
        scratch.__class__ = indexed_class(base)
        _adopt(scratch)
        scratch.add_mask(token)
        if scratch.redact("nothing to hide here") != "nothing to hide here":
            return "an index-only masker changed a clean string"
        scratch.add_mask(blob)
        scratch.add_mask(other)
        regex = scratch.__dict__[_REGEX]
        if regex is None or token in regex.pattern or "Bearer" in regex.pattern:
            return "the masker did not join its regex from masker.patterns"
        if token not in scratch.patterns or blob not in scratch.patterns.index:
            return "masker.patterns did not receive re.escape(secret)"
        checks = {
            f"a {token} b": "a *** b",
            f"log: {blob}.": "log: ***.",
            f"x={other}=y": "x=***=y",
            f"Authorization=Bearer+{token}&z": "Authorization=Bearer+***&z",
        }
        for text, expected in checks.items():
            if scratch.redact(text) != expected:
                return "the masker did not redact through masker.replacer.sub"
        scratch.reset_masker()
        if scratch.redact(f"a {token} b") != f"a {token} b" or len(scratch.patterns.index):
            return "masker.reset_masker did not assign masker.patterns and masker.replacer"
    except Exception as exc:
        return f"the probe raised {type(exc).__name__}"
    return None


def _adopt(masker: Any) -> None:
    """Move the plain ``patterns``/``replacer`` of a masker whose class was just switched into the index."""
    state = masker.__dict__
    old_patterns = state.pop("patterns", set())
    state.pop("replacer", None)
    patterns = IndexedPatterns(old_patterns)
    state[_PATTERNS] = patterns
    kept = sorted(patterns)
    state[_REGEX] = re.compile("|".join(kept)) if kept else None
    state[_REPLACER] = Replacer(state[_REGEX], patterns.index)


def install(masker: object) -> str | None:
    """Give ``masker`` the token index. Returns None when done (or already done), else why it was not."""
    if is_installed(masker):
        return None
    problem = _shape_problem(masker) or _probe(type(masker))
    if problem:
        return problem
    base = type(masker)
    masker.__class__ = indexed_class(base)
    _adopt(masker)
    return None


def uninstall(masker: object) -> None:
    """Give ``masker`` back its own class, with every indexed secret a regex alternative again."""
    if not is_installed(masker):
        return
    state = masker.__dict__
    patterns: IndexedPatterns = state.pop(_PATTERNS)
    state.pop(_REGEX, None)
    state.pop(_REPLACER, None)
    plain = set(patterns) | {re.escape(value) for value in patterns.index.values()}
    masker.__class__ = type(masker).__mro__[1]
    state["patterns"] = plain
    state["replacer"] = re.compile("|".join(plain)) if plain else None
