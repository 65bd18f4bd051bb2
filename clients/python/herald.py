"""Herald from a Python backend: publish events, mint tokens, check signed callbacks.

Herald (an SSE relay) takes events from your backend on ``POST /publish`` and sends them to the
browsers that follow their topics. This module is the backend's side of it, in three calls,
with the same semantics as the Rust client (``clients/rust``) that Herald's own command line is
built on:

- :func:`publish` sends one event, retried while Herald asks for it (a 503 or 429 with
  ``Retry-After``) or does not answer, always with the same ``Idempotency-Key``, so that Herald
  publishes it once however many attempts reach it.
- :func:`mint_token` makes the HS256 token (a JWT) that lets a browser follow private topics,
  or a service publish to some topics only, signed with Herald's ``HERALD_JWT_SECRET``.
- :func:`verify_signature` checks a ``Herald-Signature`` header, as Herald's worker signs the
  callbacks it sends (and :func:`sign_callback` makes one, as the worker does).

It needs the standard library and PyJWT only (``pip install pyjwt``), so that it can be copied
into any backend: Flask, Django, FastAPI or a plain worker.
"""

from __future__ import annotations

import hashlib
import hmac
import http
import http.client
import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any, NamedTuple

import jwt

__all__ = [
    "SIGNATURE_HEADER",
    "PublishRefused",
    "PublishUnavailable",
    "Published",
    "SignatureError",
    "mint_token",
    "publish",
    "sign_callback",
    "verify_signature",
]

SIGNATURE_HEADER = "Herald-Signature"

# The longest Retry-After honoured as given (a longer one is waited this long), and the wait
# before retrying a request that got no answer: those of the Rust client.
MAX_RETRY_AFTER = 60.0
NO_ANSWER_WAIT = 1.0

# The longest signature header worth parsing, and the most v2 entries looked at.
_MAX_HEADER_LEN = 1024
_MAX_SIGNATURES = 8
_I64_MAX = 2**63 - 1
_U64_MAX = 2**64 - 1


# --- Publishing -------------------------------------------------------------------------------


class Published(NamedTuple):
    """What Herald answered to a published event."""

    id: str
    """The event's id, as subscribers see it in ``id:``."""
    subscribers: int
    """How many of this instance's subscribers it was sent to (with Redis, not all of them)."""
    duplicate: bool
    """Whether an earlier attempt with the same key had published it already."""
    idempotency_key: str
    """The key every attempt carried: yours, or the one made for this call."""


class PublishRefused(Exception):
    """Herald refused the event (a 4xx): sending it again would get the same answer.

    A bad token (401), a topic the token does not cover (403), a bad field (400), a key already
    used on this topic for another event (422). ``error`` and ``message`` are those of Herald's
    JSON error (``{"error": "forbidden", "message": "..."}``).
    """

    # The fields are the exception's args, so that it pickles (to cross a Celery or
    # multiprocessing boundary) and is rebuilt with them.
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(status, error, message)
        self.status = status
        self.error = error
        self.message = message

    def __str__(self) -> str:
        return f"refused ({self.status} {self.error}): {self.message}"


class PublishUnavailable(Exception):
    """No answer that published the event after ``attempts`` attempts, or an answer that no
    retry can change (a 503 without ``Retry-After``: publishing is disabled; a 5xx; a redirect).
    ``reason`` is the last one; the event may be sent again later with the same key.
    """

    def __init__(self, attempts: int, reason: str) -> None:
        super().__init__(attempts, reason)
        self.attempts = attempts
        self.reason = reason

    def __str__(self) -> str:
        if self.attempts == 1:
            return f"unavailable: {self.reason}"
        return f"unavailable after {self.attempts} attempts: {self.reason}"


class _Retry(NamedTuple):
    """An attempt worth another after ``after`` seconds."""

    after: float
    reason: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Leaves a redirect unfollowed: urllib would send the ``Authorization`` header along to
    whatever host it names, and Herald itself never redirects ``/publish``."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def publish(
    herald_url: str,
    token: str,
    topic: str,
    data: Any,
    *,
    event: str | None = None,
    idempotency_key: str | None = None,
    attempts: int = 5,
    timeout: float = 10.0,
) -> Published:
    """Publishes ``data`` to ``topic`` on the Herald at ``herald_url``.

    ``herald_url`` is Herald's base URL (``http://127.0.0.1:3000``); a path is kept, so a Herald
    behind a proxy at ``https://example.com/herald`` gets ``https://example.com/herald/publish``.
    ``token`` is ``HERALD_PUBLISH_TOKEN`` or a publisher token (:func:`mint_token` with
    ``publish=``). ``data`` is sent as given: a ``str`` as its text, any other JSON value as its
    compact JSON text. ``event`` names the SSE event (``None`` sends a plain ``message``).

    Makes at most ``attempts`` attempts (at least one), each waiting ``timeout`` seconds at most
    for Herald: a 503 or 429 with ``Retry-After`` is retried after the time it names (60 s at
    most), and a request that got no answer after a second. Every attempt carries the same
    ``Idempotency-Key``: ``idempotency_key``, or 128 random bits made for this call. Give your
    own (an order id, a job id) to make a second run of the same work publish nothing new.

    Raises :class:`PublishRefused` (4xx), :class:`PublishUnavailable`, and ``ValueError`` for a
    URL that is not ``http://`` or ``https://``, or a token or key no HTTP header can carry.
    """
    url = _publish_url(herald_url)
    key = secrets.token_hex(16) if idempotency_key is None else idempotency_key
    headers = {
        "Authorization": f"Bearer {_header_value('token', token)}",
        "Idempotency-Key": _header_value("idempotency_key", key),
        "Content-Type": "application/json",
    }
    fields: dict[str, Any] = {"topic": topic} if event is None else {"topic": topic, "event": event}
    fields["data"] = data
    # allow_nan=False: NaN is not JSON, and Herald would refuse the whole body.
    body = json.dumps(fields, allow_nan=False, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        outcome = _attempt(request, timeout, attempt)
        if isinstance(outcome, Published):
            return outcome._replace(idempotency_key=key)
        if attempt == attempts:
            raise PublishUnavailable(attempts, outcome.reason)
        time.sleep(outcome.after)
    raise AssertionError("the last attempt returns or raises")


def _publish_url(herald_url: str) -> str:
    """``/publish`` under Herald's base URL, whose path (and query) are kept."""
    parts = urllib.parse.urlsplit(herald_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{herald_url} is not an http:// or https:// URL")
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{path}/publish", parts.query, ""))


def _header_value(name: str, value: str) -> str:
    """``value`` if an HTTP header can carry it: refused here, a line break or a non-ASCII
    character would fail every attempt the same way."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"{name} must be printable ASCII to go in an HTTP header")
    return value


def _attempt(request: urllib.request.Request, timeout: float, attempt: int) -> Published | _Retry:
    """Sends one attempt: the event published, or a wait before the next; raises when no
    retry can change the answer."""
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, retry_after, body = response.status, response.headers.get("Retry-After"), _read(response)
    except urllib.error.HTTPError as answer:
        with answer:
            status, retry_after, body = answer.code, answer.headers.get("Retry-After"), _read(answer)
    except (OSError, http.client.HTTPException) as err:
        # Connection refused or reset, a timeout: the event may or may not have reached Herald,
        # which the same key settles on the next attempt.
        detail = err.reason if isinstance(err, urllib.error.URLError) else err
        return _Retry(NO_ANSWER_WAIT, f"no answer: {detail or type(err).__name__}")
    return _answer(status, _retry_after(retry_after), body, attempt)


def _read(response: http.client.HTTPResponse | urllib.error.HTTPError) -> bytes:
    """The answer's body; an answer cut short is read as empty, as the Rust client does."""
    try:
        return response.read()
    except (OSError, http.client.HTTPException):
        return b""


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (capped), or ``None`` if absent or not a number of seconds."""
    text = (value or "").strip()
    if not re.fullmatch(r"\+?[0-9]+", text) or int(text) > _U64_MAX:
        return None
    return min(float(int(text)), MAX_RETRY_AFTER)


def _answer(status: int, retry_after: float | None, body: bytes, attempt: int) -> Published | _Retry:
    """Reads Herald's answer to one attempt."""
    status_text = _status_text(status)
    if 200 <= status < 300:
        published = _published(body)
        if published is None:
            raise PublishUnavailable(
                attempt, f"{status_text} with an answer that is not Herald's: {body[:200]!r}"
            )
        return published
    error, message = _describe(body)
    reason = f"{status_text} {error}: {message}"
    if status in (503, 429) and retry_after is not None:
        return _Retry(retry_after, reason)
    if 400 <= status < 500:
        raise PublishRefused(status, error, message)
    raise PublishUnavailable(attempt, reason)


def _status_text(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _published(body: bytes) -> Published | None:
    """Herald's ``{"id", "subscribers", "duplicate"}``, or ``None`` for anything else."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    id_, subscribers, duplicate = answer.get("id"), answer.get("subscribers"), answer.get("duplicate")
    if (
        not isinstance(id_, str)
        or not isinstance(subscribers, int)
        or isinstance(subscribers, bool)
        or subscribers < 0
        or not isinstance(duplicate, bool)
    ):
        return None
    return Published(id_, subscribers, duplicate, "")


def _describe(body: bytes) -> tuple[str, str]:
    """The ``error`` and ``message`` of Herald's JSON error, or the start of whatever else came
    (a proxy's HTML page, say)."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if (
        isinstance(answer, dict)
        and isinstance(answer.get("error"), str)
        and isinstance(answer.get("message"), str)
    ):
        return answer["error"], answer["message"]
    return "error", body[:200].decode("utf-8", "replace")


# --- Tokens -----------------------------------------------------------------------------------


def mint_token(
    secret: str | bytes,
    *,
    subscribe: Iterable[str] = (),
    publish: Iterable[str] = (),
    sub: str | None = None,
    ttl: float = 600,
) -> str:
    """An HS256 token (a JWT) signed with ``secret``, Herald's ``HERALD_JWT_SECRET``.

    ``subscribe`` lists the topic patterns its holder may follow on ``GET /events``, ``publish``
    those it may publish to (``user.42``, ``user.42.*``, ``orders.**``); Herald checks them when
    the token is used. ``sub`` names the holder in Herald's request log. The token lasts ``ttl``
    seconds (whole seconds) from now, and a stream opened with it ends then, with
    ``event: token-expired``. Raises ``ValueError`` for an empty secret or a negative ``ttl``,
    ``TypeError`` for a single string where a list of patterns is expected.
    """
    if not secret:
        raise ValueError("the secret is empty")
    if ttl < 0:
        raise ValueError("ttl must not be negative")
    grant = {"subscribe": _patterns("subscribe", subscribe), "publish": _patterns("publish", publish)}
    now = int(time.time())
    claims: dict[str, Any] = {} if sub is None else {"sub": sub}
    # Empty lists are left out, as the Rust client leaves them out.
    claims.update(iat=now, exp=now + int(ttl), herald={name: list_ for name, list_ in grant.items() if list_})
    return jwt.encode(claims, secret, algorithm="HS256")


def _patterns(name: str, patterns: Iterable[str]) -> list[str]:
    # A string is iterable too, and would become one pattern per character.
    if isinstance(patterns, str):
        raise TypeError(f"{name} takes a list of topic patterns, such as [{patterns!r}]")
    return list(patterns)


# --- Signed callbacks -------------------------------------------------------------------------

_SIGNATURE_MESSAGES = {
    "missing": "the Herald-Signature header is missing",
    "malformed": "the Herald-Signature header is not t=<unix seconds>,v2=<hex HMAC-SHA256>",
    "expired": "the signature's time is outside the tolerance",
    "mismatch": "no signature matches the body",
    "outdated": "v1 signatures (of the body alone) are no longer accepted: "
    'send v2, the HMAC-SHA256 of "<t>.<job id>.<body>"',
}


class SignatureError(Exception):
    """A ``Herald-Signature`` that does not hold. ``reason`` is one of ``"missing"``,
    ``"malformed"``, ``"expired"`` (the time is further from now than the tolerance, either
    way), ``"mismatch"`` (no signature matches this body and job) and ``"outdated"`` (only
    ``v1`` signatures, of the body alone); ``str(error)`` says it in words (Herald's own)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return _SIGNATURE_MESSAGES[self.reason]


def sign_callback(secret: str | bytes, job: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``Herald-Signature`` value that signs ``body`` about ``job`` at ``timestamp`` (Unix
    seconds, now if ``None``): ``t=<timestamp>,v2=<hex HMAC-SHA256 of "<t>.<job>.<body>">``,
    keyed with ``secret`` (``HERALD_CALLBACK_SECRET``). It is what Herald's worker sends to
    ``/callbacks/{job}``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v2={_mac(secret, timestamp, job, body).hexdigest()}"


def verify_signature(
    secret: str | bytes, header: str | None, job: str, body: bytes, *, tolerance: float = 300
) -> None:
    """Checks a ``Herald-Signature`` header (``None`` if the request had none) against the raw
    ``body`` about ``job``, signed with ``secret`` within ``tolerance`` seconds of this
    machine's clock; raises :class:`SignatureError` if it does not hold.

    One matching ``v2`` entry among several is enough (a sender rotating its secret signs with
    both); schemes other than ``v2`` are ignored, but a header with ``v1`` entries alone is
    ``"outdated"``. The comparison is constant time. It does not remember signatures: to refuse
    a replay, keep the ones accepted within the tolerance, as Herald's ``/callbacks`` does.
    """
    if header is None:
        raise SignatureError("missing")
    timestamp, signatures = _parse_signature(header)
    if abs(int(time.time()) - timestamp) > tolerance:
        raise SignatureError("expired")
    expected = _mac(secret, timestamp, job, body).digest()
    # Every candidate is compared, so the time taken does not say which one matched.
    if not any([hmac.compare_digest(expected, candidate) for candidate in signatures]):
        raise SignatureError("mismatch")


def _parse_signature(header: str) -> tuple[int, list[bytes]]:
    """The time and candidate signatures of a header, refused as Herald refuses them: a
    duplicated, signed or non-digit ``t``, a ``v2`` that is not 64 lowercase hex digits, a part
    without ``=``, a header over 1024 bytes."""
    if len(header.encode("utf-8", "surrogatepass")) > _MAX_HEADER_LEN:
        raise SignatureError("malformed")
    timestamp: int | None = None
    signatures: list[bytes] = []
    outdated = False
    for part in header.split(","):
        key, equals, value = part.strip().partition("=")
        if not equals:
            raise SignatureError("malformed")
        if key == "t":
            if timestamp is not None or not re.fullmatch(r"[0-9]+", value) or int(value) > _I64_MAX:
                raise SignatureError("malformed")
            timestamp = int(value)
        elif key == "v1":
            outdated = True
        elif key == "v2" and len(signatures) < _MAX_SIGNATURES:
            if not re.fullmatch(r"[0-9a-f]{64}", value):
                raise SignatureError("malformed")
            signatures.append(bytes.fromhex(value))
    if timestamp is not None and signatures:
        return timestamp, signatures
    raise SignatureError("outdated" if timestamp is not None and outdated else "malformed")


def _mac(secret: str | bytes, timestamp: int, job: str, body: bytes) -> hmac.HMAC:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.{job}.".encode() + body, hashlib.sha256)
