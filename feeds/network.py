"""What a failed network call says: the kind of failure, read from the exception and its causes.

Clients wrap their errors (transformers an ``OSError`` around huggingface_hub's, requests a
``ConnectionError`` around urllib3's DNS failure), so :func:`classify` looks at the whole chain:
HTTP status codes (``status_code``/``status`` of the exception or its ``response``), the class names
of ccxt, requests, httpx, curl_cffi, yfinance and huggingface_hub, and, for network exceptions,
their text. Each source then writes one line that names what failed instead of calling every
failure "unreachable".
"""

from __future__ import annotations

import contextlib
import logging
import re
import urllib.error
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

AUTH, RATE, NOT_FOUND, TIMEOUT, DNS, CONNECTION, HTTP, OTHER = (
    "auth", "rate", "not_found", "timeout", "dns", "connection", "http", "other")
OFFLINE_KINDS = frozenset({TIMEOUT, DNS, CONNECTION})
_NETWORK_MODULES = frozenset({"urllib3", "requests", "http", "socket", "ssl", "curl_cffi", "aiohttp",
                              "httpx", "httpx2", "httpcore"})
_TYPES = {  # class names anywhere in an exception's MRO, first match wins
    AUTH: {"AuthenticationError", "AuthError", "PermissionDenied", "GatedRepoError"},
    NOT_FOUND: {"RepositoryNotFoundError", "RevisionNotFoundError", "RemoteEntryNotFoundError"},
    RATE: {"RateLimitExceeded", "DDoSProtection", "YFRateLimitError", "TooManyRequests"},
    TIMEOUT: {"TimeoutError", "Timeout", "RequestTimeout", "ReadTimeout", "ConnectTimeout",
              "ReadTimeoutError", "ConnectTimeoutError", "TimeoutException"},
    DNS: {"gaierror", "NameResolutionError", "DNSError"},
}
_TEXT = {  # patterns in the text of the chain, checked after the types and status codes
    TIMEOUT: re.compile(r"timed? ?out", re.I),
    DNS: re.compile(r"name or service not known|nodename nor servname|name resolution|failed to "
                    r"resolve|getaddrinfo|could not resolve host|no address associated", re.I),
}
AUTH_TEXT = re.compile(r"api.?key|unauthori[sz]ed|not authori[sz]ed|forbidden|invalid key|"
                       r"access to this resource", re.I)
RATE_TEXT = re.compile(r"rate.?limit|too many requests|limit (reached|exceeded)", re.I)
_STATUS = {401: AUTH, 403: AUTH, 404: NOT_FOUND, 429: RATE}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A classified failure: ``kind`` (one of the module's constants), the HTTP ``status`` if
    any, and ``detail`` (``HTTP 401, HTTPError: ...``: the exception's type and text)."""

    kind: str
    status: int | None
    detail: str

    @property
    def offline(self) -> bool:
        """True when the network itself failed (timeout, DNS, connection): retrying or working
        from the cache is the fix."""
        return self.kind in OFFLINE_KINDS

    def says(self, has_key: bool = False) -> str:
        """What happened, to follow a name: ``" timed out"``, ``" refused the API key"``, ..."""
        return {AUTH: " refused the API key" if has_key else " refused access",
                RATE: " rate limit hit", NOT_FOUND: " answered not found", TIMEOUT: " timed out",
                DNS: " is unreachable: DNS lookup failed", CONNECTION: " is unreachable",
                HTTP: f" answered HTTP {self.status}"}.get(self.kind, " failed")


def failure_line(label: str, exc: BaseException, keys: str | None, offline_fix: str) -> str:
    """One line for a failed download from ``label``: what failed, the exception, the fix.

    Args:
        label: the source, e.g. ``Yahoo Finance``.
        exc: what the client raised.
        keys: the variables holding the source's API keys (None: it needs none).
        offline_fix: the advice when the network itself failed (and for unknown failures).
    """
    failure = classify(exc)
    server = failure.kind == HTTP and (failure.status or 0) >= 500
    fix = {AUTH: f"Check {keys}." if keys else "Retry later; if it persists, update the client "
                 "library (e.g. pip install -U yfinance).",
           RATE: "Wait a minute and retry; data already cached needs no download.",
           NOT_FOUND: "Check the symbol and dates.",
           HTTP: "The server failed; retry later." if server else "Check the symbol and dates.",
           }.get(failure.kind, offline_fix)
    return f"{label}{failure.says(keys is not None)} ({failure.detail}). {fix}"


def classify(exc: BaseException) -> Failure:
    """The :class:`Failure` ``exc`` (and the exceptions it was raised from) describes."""
    chain = _chain(exc)
    names = {c.__name__ for e in chain for c in type(e).__mro__}
    status = next((s for s in map(_status, chain) if s is not None), None)
    text = " ".join(one_line(e) for e in chain)
    detail = f"{type(exc).__name__}: {one_line(exc)}"
    if status is not None and str(status) not in detail:
        detail = f"HTTP {status}, {detail}"
    return Failure(_kind(names, status, text, any(map(_is_network, chain))), status, detail)


def _kind(names: set[str], status: int | None, text: str, network: bool) -> str:
    typed = next((kind for kind, types in _TYPES.items() if names & types), None)
    if typed is not None:
        return typed
    if status in _STATUS:
        return _STATUS[status]
    if status is not None and status >= 500:
        return HTTP
    found = next((kind for kind, pattern in _TEXT.items() if network and pattern.search(text)), None)
    if found is not None:
        return found
    if AUTH_TEXT.search(text) or RATE_TEXT.search(text):
        return AUTH if AUTH_TEXT.search(text) else RATE
    if status is not None:
        return HTTP
    return CONNECTION if network else OTHER


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during (at most 8, no cycles)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 8:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _status(exc: BaseException) -> int | None:
    """An HTTP status code on ``exc`` or its ``response`` (urllib's ``HTTPError.code`` too)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code
    for obj in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status"):
            value = getattr(obj, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def _is_network(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    root = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or root in _NETWORK_MODULES or "NetworkError" in names


def one_line(exc: BaseException) -> str:
    """An exception's text squeezed onto one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


class _Debug(logging.Handler):
    """Passes a library's log records on as debug records of llmbt (``bt -v`` shows them)."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s: %s", record.name, record.getMessage().strip())


@contextlib.contextmanager
def hushed(library: str) -> Iterator[None]:
    """Keep ``library``'s log records and any Python warnings off the terminal while a call into it
    runs (yfinance logs every failed download and pandas warns inside it); the caller reports a
    failure as one line of its own, and ``bt -v`` still shows them, as debug lines."""
    logger, handler = logging.getLogger(library), _Debug()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
            for warning in caught:
                log.debug("%s: %s", warning.category.__name__, warning.message)
