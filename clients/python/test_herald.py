"""Tests of herald.py against the real Herald binary ($HERALD_BIN, else target/debug/herald),
started on 127.0.0.1 port 0 with only the settings each test gives it, and its own `herald sign`
and `herald verify` for the signature scheme. A stand-in server plays the few answers Herald
never gives (a redirect, a proxy's error page, a 429 on /publish).

Run: examples/flask/.venv/bin/python -m unittest discover -s clients/python -v
"""

from __future__ import annotations

import http.server
import json
import os
import pickle
import queue
import re
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import jwt

from herald import (
    SIGNATURE_HEADER,
    PublishRefused,
    PublishUnavailable,
    SignatureError,
    mint_token,
    publish,
    sign_callback,
    verify_signature,
)

HERALD_BIN = os.environ.get("HERALD_BIN") or str(Path(__file__).resolve().parents[2] / "target/debug/herald")
PUBLISH_TOKEN = "python-client-test-publish-token"
JWT_SECRET = "the Python client tests' secret, 32 bytes or more"
CALLBACK_SECRET = "whsec_python_client_test"
# How long a test waits for Herald (to start, to answer, to send an event) before it fails.
PATIENCE = 10.0


def unique(prefix: str) -> str:
    """A topic of its own for each test, so that tests sharing a Herald never see each other's events."""
    return f"{prefix}.{uuid.uuid4().hex}"


def clean_env(**env: str | None) -> dict[str, str]:
    """PATH and what the test says: a HERALD_* variable of the caller's would change Herald."""
    settings = {"PATH": os.environ.get("PATH", os.defpath), **env}
    return {name: value for name, value in settings.items() if value is not None}


class Herald:
    """The real Herald, serving on 127.0.0.1 port 0 until `stop()`."""

    LISTENING = re.compile(r"listening on (http://\S+)")

    def __init__(self, **env: str | None) -> None:
        """Starts Herald with the tests' settings, `env` on top (`None` leaves a setting out),
        and returns once it listens."""
        settings = clean_env(
            **{
                "LEPTOS_SITE_ADDR": "127.0.0.1:0",
                "HERALD_PUBLISH_TOKEN": PUBLISH_TOKEN,
                "HERALD_JWT_SECRET": JWT_SECRET,
                "HERALD_PUBLIC_TOPICS": "public.**",
                **env,
            }
        )
        self.process = subprocess.Popen(
            [HERALD_BIN],
            env=settings,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        listening: queue.Queue[str | None] = queue.Queue()
        # Drained for as long as Herald runs, so that its log never fills the pipe and blocks it.
        self.drainer = threading.Thread(target=self._drain, args=(listening,), daemon=True)
        self.drainer.start()
        try:
            url = listening.get(timeout=PATIENCE)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise RuntimeError(f"{HERALD_BIN} did not start listening:\n{''.join(self.log)}")
        self.url = url

    def _drain(self, listening: queue.Queue[str | None]) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            found = self.LISTENING.search(line)
            if found:
                listening.put(found.group(1))
        listening.put(None)  # It exited (read only if it never listened).

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=PATIENCE)
        self.drainer.join(timeout=PATIENCE)  # Until the end of its log, which the kill brings.
        assert self.process.stderr is not None
        self.process.stderr.close()


class SseEvent(NamedTuple):
    id: str | None
    event: str
    data: str


class Subscription:
    """`GET /events` on some topics, read one event at a time."""

    def __init__(self, herald_url: str, *topics: str, token: str | None = None) -> None:
        query = [("topic", topic) for topic in topics] + ([("access_token", token)] if token else [])
        self.response = urllib.request.urlopen(
            f"{herald_url}/events?{urllib.parse.urlencode(query)}", timeout=PATIENCE
        )
        # Herald subscribes before it answers and opens every stream with a `retry:` hint: once
        # that is read, every event published from now on is on its way to this stream.
        opening = self.response.readline()
        if not opening.startswith(b"retry:"):
            raise AssertionError(f"the stream opened with {opening!r}, not a retry: hint")

    def next_event(self) -> SseEvent:
        """The next event (comments and the `retry:` hint skipped), as a browser reads it."""
        fields: dict[str, list[str]] = {}
        while True:
            line = self.response.readline()
            if not line:
                raise AssertionError("the stream ended")
            line = line.decode().rstrip("\r\n")
            if not line:
                if "data" in fields:
                    event = fields.get("event", ["message"])[-1]
                    id_ = fields["id"][-1] if "id" in fields else None
                    return SseEvent(id_, event, "\n".join(fields["data"]))
                fields.clear()
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refusal_of_stream(herald_url: str, topic: str, token: str | None) -> tuple[int, str]:
    """The status and error code with which Herald refuses to open `topic` with `token`."""
    try:
        with Subscription(herald_url, topic, token=token):
            raise AssertionError(f"{topic} opened")
    except urllib.error.HTTPError as refusal:
        with refusal:
            return refusal.code, str(json.loads(refusal.read())["error"])


def closed_port() -> int:
    """A port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class WithHerald(unittest.TestCase):
    """Tests that share one Herald, each on topics of its own."""

    herald: Herald

    @classmethod
    def setUpClass(cls) -> None:
        cls.herald = Herald()
        cls.addClassCleanup(cls.herald.stop)


class PublishTest(WithHerald):
    def test_a_published_event_reaches_its_subscriber_with_its_name_and_data(self) -> None:
        topic = unique("public.orders")
        with Subscription(self.herald.url, topic) as subscription:
            published = publish(self.herald.url, PUBLISH_TOKEN, topic, {"id": 7}, event="created")
            received = subscription.next_event()

        self.assertEqual(received, SseEvent(published.id, "created", '{"id":7}'))
        self.assertEqual(published.subscribers, 1)
        self.assertFalse(published.duplicate)
        self.assertRegex(published.idempotency_key, r"^[0-9a-f]{32}$")

    def test_text_is_sent_as_it_is_other_values_as_compact_json_and_an_unnamed_event_is_a_message(
        self,
    ) -> None:
        topic = unique("public.notes")
        with Subscription(self.herald.url, topic) as subscription:
            publish(self.herald.url, PUBLISH_TOKEN, topic, "two\nlines")
            publish(self.herald.url, PUBLISH_TOKEN, topic, [1, "a", None, True])
            publish(self.herald.url, PUBLISH_TOKEN, topic, '{"already": "json text"}')
            received = [subscription.next_event() for _ in range(3)]

        self.assertEqual(
            [(event.event, event.data) for event in received],
            [
                ("message", "two\nlines"),
                ("message", '[1,"a",null,true]'),
                ("message", '{"already": "json text"}'),
            ],
        )

    def test_the_same_idempotency_key_twice_publishes_once(self) -> None:
        topic = unique("public.orders")
        with Subscription(self.herald.url, topic) as subscription:
            first = publish(self.herald.url, PUBLISH_TOKEN, topic, {"id": 7}, idempotency_key="order-7")
            again = publish(self.herald.url, PUBLISH_TOKEN, topic, {"id": 7}, idempotency_key="order-7")
            after = publish(self.herald.url, PUBLISH_TOKEN, topic, {"id": 8}, idempotency_key="order-8")
            received = [subscription.next_event(), subscription.next_event()]

        self.assertEqual((first.duplicate, again.duplicate), (False, True))
        self.assertEqual(again.id, first.id)
        self.assertEqual(again.idempotency_key, "order-7")
        # The event after the duplicate comes next: the duplicate was never sent.
        self.assertEqual([event.id for event in received], [first.id, after.id])

    def test_a_wrong_token_is_refused_with_401_at_the_first_attempt(self) -> None:
        with self.assertRaises(PublishRefused) as refused:
            publish(self.herald.url, "not-the-token", unique("public.orders"), "x", attempts=3)
        # With a JWT key, Herald also tries it as a publisher token, and says it is neither.
        self.assertEqual((refused.exception.status, refused.exception.error), (401, "unauthorized"))
        self.assertEqual(
            str(refused.exception),
            "refused (401 unauthorized): the bearer token is neither HERALD_PUBLISH_TOKEN nor a publisher token (a JWT)",
        )

    def test_a_reserved_event_name_is_refused_with_400(self) -> None:
        with self.assertRaises(PublishRefused) as refused:
            publish(self.herald.url, PUBLISH_TOKEN, unique("public.orders"), "x", event="reset")
        self.assertEqual((refused.exception.status, refused.exception.error), (400, "reserved-event-name"))
        self.assertIn('"reset"', refused.exception.message)

    def test_a_topic_with_a_slash_is_refused_with_400_invalid(self) -> None:
        with self.assertRaises(PublishRefused) as refused:
            publish(self.herald.url, PUBLISH_TOKEN, "orders/42", "x")
        self.assertEqual((refused.exception.status, refused.exception.error), (400, "invalid"))
        self.assertTrue(refused.exception.message.startswith("topic: "), refused.exception.message)

    def test_a_private_session_topic_is_refused_with_403(self) -> None:
        with self.assertRaises(PublishRefused) as refused:
            publish(self.herald.url, PUBLISH_TOKEN, unique("session"), "x")
        self.assertEqual((refused.exception.status, refused.exception.error), (403, "forbidden"))

    def test_a_key_reused_for_another_event_is_refused_with_422(self) -> None:
        topic = unique("public.orders")
        publish(self.herald.url, PUBLISH_TOKEN, topic, "first", idempotency_key="k-1")
        with self.assertRaises(PublishRefused) as refused:
            publish(self.herald.url, PUBLISH_TOKEN, topic, "second", idempotency_key="k-1")
        self.assertEqual((refused.exception.status, refused.exception.error), (422, "idempotency-key-reused"))

    def test_a_base_url_with_a_trailing_slash_publishes_the_same(self) -> None:
        published = publish(f"{self.herald.url}/", PUBLISH_TOKEN, unique("public.orders"), "x")
        self.assertFalse(published.duplicate)

    def test_a_url_that_is_not_http_is_a_value_error(self) -> None:
        for url in ["ftp://127.0.0.1/", "127.0.0.1:3000", "http://"]:
            with self.subTest(url=url), self.assertRaises(ValueError):
                publish(url, PUBLISH_TOKEN, "public.orders", "x")

    def test_a_key_or_token_no_header_can_carry_is_a_value_error_before_any_attempt(self) -> None:
        with self.assertRaises(ValueError):
            publish(self.herald.url, PUBLISH_TOKEN, "public.orders", "x", idempotency_key="a\r\nX-Evil: 1")
        with self.assertRaises(ValueError):
            publish(self.herald.url, "tökén", "public.orders", "x")


class UnavailableTest(unittest.TestCase):
    def test_a_503_with_retry_after_is_retried_with_the_same_key_until_it_is_published(self) -> None:
        herald_at_one_a_second = Herald(HERALD_MAX_PUBLISH_RATE="1")
        self.addCleanup(herald_at_one_a_second.stop)
        topic = unique("public.orders")
        keys = ["order-1", "order-2", "order-3"]

        with Subscription(herald_at_one_a_second.url, topic) as subscription:
            started = time.monotonic()
            published = [
                publish(herald_at_one_a_second.url, PUBLISH_TOKEN, topic, key, idempotency_key=key)
                for key in keys
            ]
            took = time.monotonic() - started
            received = [subscription.next_event() for _ in keys]

        self.assertEqual([p.idempotency_key for p in published], keys)
        self.assertEqual([p.duplicate for p in published], [False, False, False])
        self.assertEqual(len({p.id for p in published}), 3)
        self.assertEqual(
            [(event.id, event.data) for event in received], [(p.id, k) for p, k in zip(published, keys)]
        )
        # One event a second: the second and third were each refused once (Retry-After: 1) and
        # waited, so the three took two seconds, not milliseconds.
        self.assertGreaterEqual(took, 1.9)

    def test_a_herald_with_publishing_disabled_is_unavailable_at_the_first_attempt(self) -> None:
        disabled = Herald(HERALD_PUBLISH_TOKEN=None, HERALD_JWT_SECRET=None, HERALD_PUBLIC_TOPICS=None)
        self.addCleanup(disabled.stop)

        started = time.monotonic()
        with self.assertRaises(PublishUnavailable) as unavailable:
            publish(disabled.url, PUBLISH_TOKEN, "public.orders", "x", attempts=5)

        self.assertLess(time.monotonic() - started, 1.0, "a 503 without Retry-After is not retried")
        self.assertEqual(unavailable.exception.attempts, 1)
        self.assertTrue(unavailable.exception.reason.startswith("503 Service Unavailable disabled: "))

    def test_a_herald_that_does_not_answer_is_unavailable_after_the_given_attempts(self) -> None:
        started = time.monotonic()
        with self.assertRaises(PublishUnavailable) as unavailable:
            publish(f"http://127.0.0.1:{closed_port()}", PUBLISH_TOKEN, "public.orders", "x", attempts=2)

        self.assertGreaterEqual(time.monotonic() - started, 1.0, "a second between the attempts")
        self.assertEqual(unavailable.exception.attempts, 2)
        self.assertIn("refused", unavailable.exception.reason)
        self.assertTrue(str(unavailable.exception).startswith("unavailable after 2 attempts: no answer: "))

    def test_a_herald_that_never_answers_times_out_each_attempt(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as silent:  # Connections wait, never answered.
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            with self.assertRaises(PublishUnavailable) as unavailable:
                publish(url, PUBLISH_TOKEN, "public.orders", "x", attempts=1, timeout=0.2)
        self.assertEqual(unavailable.exception.reason, "no answer: timed out")


class StandIn:
    """A server that gives canned answers and records what it was sent: for the answers Herald
    itself never gives."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.requests.append((self.path, dict(self.headers), body))
                status, headers, answer = stand_in.answers.pop(0)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(answer))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ACCEPTED = (202, {"Content-Type": "application/json"}, b'{"id":"1-1","subscribers":0,"duplicate":false}')


class PublishRequestTest(unittest.TestCase):
    def stand_in(self, *answers: tuple[int, dict[str, str], bytes]) -> StandIn:
        server = StandIn(*answers)
        self.addCleanup(server.stop)
        return server

    def test_the_event_is_posted_to_publish_under_the_base_urls_path_with_token_and_key(self) -> None:
        server = self.stand_in(ACCEPTED, ACCEPTED)
        publish(f"{server.url}/herald", "the-token", "orders", {"id": 7})
        publish(f"{server.url}/herald/", "the-token", "orders", "x", event="created", idempotency_key="mine")

        (path, headers, body), (second_path, second_headers, second_body) = server.requests
        self.assertEqual((path, second_path), ("/herald/publish", "/herald/publish"))
        self.assertEqual(headers["Authorization"], "Bearer the-token")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertRegex(headers["Idempotency-Key"], r"^[0-9a-f]{32}$")
        self.assertEqual(json.loads(body), {"topic": "orders", "data": {"id": 7}})
        self.assertEqual(second_headers["Idempotency-Key"], "mine")
        self.assertEqual(json.loads(second_body), {"topic": "orders", "event": "created", "data": "x"})

    def test_a_429_with_retry_after_is_retried_with_the_same_key(self) -> None:
        busy = (429, {"Retry-After": "1"}, b'{"error":"too-many","message":"slow down"}')
        server = self.stand_in(busy, ACCEPTED)

        started = time.monotonic()
        published = publish(server.url, "the-token", "orders", "x")

        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        keys = [headers["Idempotency-Key"] for _, headers, _ in server.requests]
        self.assertEqual(keys, [published.idempotency_key] * 2)

    def test_a_429_without_retry_after_is_refused(self) -> None:
        server = self.stand_in((429, {}, b'{"error":"too-many","message":"slow down"}'))
        with self.assertRaises(PublishRefused) as refused:
            publish(server.url, "the-token", "orders", "x")
        self.assertEqual((refused.exception.status, refused.exception.error), (429, "too-many"))

    def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(self) -> None:
        elsewhere = self.stand_in(ACCEPTED)
        server = self.stand_in((307, {"Location": f"{elsewhere.url}/publish"}, b""))

        with self.assertRaises(PublishUnavailable) as unavailable:
            publish(server.url, "the-token", "orders", "x")

        self.assertTrue(unavailable.exception.reason.startswith("307 Temporary Redirect"))
        self.assertEqual(elsewhere.requests, [])

    def test_a_proxys_error_page_is_unavailable_and_shown_in_the_reason(self) -> None:
        server = self.stand_in((502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"))
        with self.assertRaises(PublishUnavailable) as unavailable:
            publish(server.url, "the-token", "orders", "x")
        self.assertEqual(unavailable.exception.reason, "502 Bad Gateway error: <html>Bad Gateway</html>")

    def test_a_success_that_is_not_heralds_answer_is_unavailable(self) -> None:
        server = self.stand_in((200, {"Content-Type": "text/html"}, b"<html>Welcome to nginx</html>"))
        with self.assertRaises(PublishUnavailable) as unavailable:
            publish(server.url, "the-token", "orders", "x")
        self.assertIn("not Herald's", unavailable.exception.reason)


class ErrorsTest(unittest.TestCase):
    def test_errors_survive_pickling_as_a_task_queue_sends_them(self) -> None:
        for error in [
            PublishRefused(403, "forbidden", "not yours"),
            PublishUnavailable(3, "no answer: timed out"),
            SignatureError("expired"),
        ]:
            with self.subTest(error=error):
                copy = pickle.loads(pickle.dumps(error))
                self.assertEqual((type(copy), vars(copy), str(copy)), (type(error), vars(error), str(error)))

    def test_errors_say_what_happened(self) -> None:
        self.assertEqual(
            str(PublishRefused(403, "forbidden", "not yours")), "refused (403 forbidden): not yours"
        )
        self.assertEqual(str(PublishUnavailable(1, "503 x")), "unavailable: 503 x")
        self.assertEqual(str(PublishUnavailable(3, "no answer")), "unavailable after 3 attempts: no answer")


class TokenTest(WithHerald):
    def test_a_minted_subscriber_token_opens_the_topics_it_covers_and_no_other(self) -> None:
        user = uuid.uuid4().hex
        token = mint_token(JWT_SECRET, subscribe=[f"user.{user}", f"user.{user}.*"], sub=f"user-{user}")

        with Subscription(self.herald.url, f"user.{user}.orders", token=token) as subscription:
            published = publish(self.herald.url, PUBLISH_TOKEN, f"user.{user}.orders", "shipped")
            self.assertEqual(subscription.next_event(), SseEvent(published.id, "message", "shipped"))

        self.assertEqual(refusal_of_stream(self.herald.url, f"user.{user}x", token), (403, "forbidden"))
        self.assertEqual(refusal_of_stream(self.herald.url, f"user.{user}", None), (401, "token-required"))
        other_secret = mint_token("another secret, also 32 bytes or more", subscribe=[f"user.{user}"])
        self.assertEqual(
            refusal_of_stream(self.herald.url, f"user.{user}", other_secret), (401, "invalid-token")
        )

    def test_a_minted_publisher_token_publishes_to_its_topics_and_is_refused_elsewhere(self) -> None:
        service = uuid.uuid4().hex
        token = mint_token(JWT_SECRET, publish=[f"invoices.{service}.**"], sub="billing")

        published = publish(self.herald.url, token, f"invoices.{service}.eu", {"total": 12})
        self.assertFalse(published.duplicate)
        with self.assertRaises(PublishRefused) as refused:
            publish(self.herald.url, token, f"orders.{service}", "x")
        self.assertEqual((refused.exception.status, refused.exception.error), (403, "forbidden"))

    def test_a_minted_token_is_hs256_with_the_claims_herald_reads(self) -> None:
        token = mint_token(
            JWT_SECRET.encode(), subscribe=("user.42", "user.42.*"), publish=["orders.**"], sub="u-42"
        )

        self.assertEqual(jwt.get_unverified_header(token)["alg"], "HS256")
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        self.assertEqual(claims["sub"], "u-42")
        self.assertEqual(claims["herald"], {"subscribe": ["user.42", "user.42.*"], "publish": ["orders.**"]})
        self.assertEqual(claims["exp"] - claims["iat"], 600)
        self.assertLessEqual(abs(claims["iat"] - time.time()), 2)

    def test_what_the_grant_leaves_out_the_token_leaves_out(self) -> None:
        token = mint_token(JWT_SECRET, subscribe=["news"], ttl=60.9)
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        self.assertEqual(set(claims), {"iat", "exp", "herald"})
        self.assertEqual(claims["herald"], {"subscribe": ["news"]})
        self.assertEqual(claims["exp"] - claims["iat"], 60)

    def test_an_empty_secret_a_negative_ttl_and_a_lone_string_of_patterns_are_refused(self) -> None:
        with self.assertRaises(ValueError):
            mint_token("", subscribe=["news"])
        with self.assertRaises(ValueError):
            mint_token(JWT_SECRET, subscribe=["news"], ttl=-1)
        with self.assertRaises(TypeError):
            mint_token(JWT_SECRET, subscribe="news")


def herald_verify(header: str, job: str, body: bytes) -> tuple[int, str]:
    """What `herald verify` (with its default tolerance, 5 minutes) says of `header`: its exit
    code and the reason on its stderr line."""
    done = subprocess.run(
        [HERALD_BIN, "verify", "--secret", CALLBACK_SECRET, "--job", job, "--signature", header, "-"],
        input=body,
        capture_output=True,
        env=clean_env(),
        timeout=PATIENCE,
    )
    return done.returncode, done.stderr.decode().strip().removeprefix("error: ")


def herald_sign(job: str, body: bytes, timestamp: int | None = None) -> str:
    """The header `herald sign` makes."""
    time_flag = [] if timestamp is None else ["--time", str(timestamp)]
    done = subprocess.run(
        [HERALD_BIN, "sign", "--secret", CALLBACK_SECRET, "--job", job, *time_flag, "-"],
        input=body,
        capture_output=True,
        env=clean_env(),
        timeout=PATIENCE,
        check=True,
    )
    return done.stdout.decode().strip()


def v2_of(header: str) -> str:
    return header.split(",v2=")[1]


# Bytes as a callback's body may hold them: a line break, and a byte that is not UTF-8.
BODY = b'{"status":"done","result":{"answer":42}}\n\xff'
V2 = "a" * 64


class SignatureTest(unittest.TestCase):
    def reason_of(
        self, header: str | None, job: str = "job-1", body: bytes = BODY, tolerance: float = 300
    ) -> str:
        with self.assertRaises(SignatureError) as refused:
            verify_signature(CALLBACK_SECRET, header, job, body, tolerance=tolerance)
        return refused.exception.reason

    def test_the_worked_example_of_the_api_doc(self) -> None:
        header = sign_callback(b"whsec_test", "job-1", b"{}", timestamp=1700000000)
        self.assertEqual(
            header, "t=1700000000,v2=79a7d49d493cd22e5e2277cd78bf06dc59c7982b3f0d708abe0d45bdb1d5ec35"
        )
        verify_signature("whsec_test", header, "job-1", b"{}", tolerance=float("inf"))
        self.assertEqual(SIGNATURE_HEADER, "Herald-Signature")

    def test_a_signature_made_now_verifies(self) -> None:
        verify_signature(CALLBACK_SECRET, sign_callback(CALLBACK_SECRET, "job-1", BODY), "job-1", BODY)
        verify_signature(
            CALLBACK_SECRET.encode(), sign_callback(CALLBACK_SECRET.encode(), "job-1", BODY), "job-1", BODY
        )

    def test_what_herald_sign_makes_verifies_here(self) -> None:
        verify_signature(CALLBACK_SECRET, herald_sign("job-1", BODY), "job-1", BODY)
        self.assertEqual(
            herald_sign("job-1", BODY, 1700000000),
            sign_callback(CALLBACK_SECRET, "job-1", BODY, timestamp=1700000000),
        )

    def test_what_sign_callback_makes_herald_verify_accepts(self) -> None:
        self.assertEqual(herald_verify(sign_callback(CALLBACK_SECRET, "job-1", BODY), "job-1", BODY), (0, ""))

    def test_each_refusal_is_the_one_herald_verify_gives_in_its_words(self) -> None:
        now = int(time.time())
        good = sign_callback(CALLBACK_SECRET, "job-1", BODY, timestamp=now)
        for header, body, job, reason in [
            (good, BODY + b" ", "job-1", "mismatch"),
            (good, BODY, "job-2", "mismatch"),
            (sign_callback("another secret", "job-1", BODY, timestamp=now), BODY, "job-1", "mismatch"),
            (sign_callback(CALLBACK_SECRET, "job-1", BODY, timestamp=now - 310), BODY, "job-1", "expired"),
            (sign_callback(CALLBACK_SECRET, "job-1", BODY, timestamp=now + 310), BODY, "job-1", "expired"),
            (f"t={now},v1={V2}", BODY, "job-1", "outdated"),
            (f"t={now},v2={V2.upper()}", BODY, "job-1", "malformed"),
        ]:
            with self.subTest(header=header, job=job, reason=reason):
                self.assertEqual(self.reason_of(header, job, body), reason)
                self.assertEqual(herald_verify(header, job, body), (1, str(SignatureError(reason))))

    def test_a_time_within_the_tolerance_either_way_verifies(self) -> None:
        now = int(time.time())
        for timestamp in [now - 290, now + 290]:
            header = sign_callback(CALLBACK_SECRET, "job-1", BODY, timestamp=timestamp)
            verify_signature(CALLBACK_SECRET, header, "job-1", BODY, tolerance=300)
        header = sign_callback(CALLBACK_SECRET, "job-1", BODY, timestamp=now - 30)
        self.assertEqual(self.reason_of(header, tolerance=10), "expired")

    def test_one_matching_signature_among_several_is_enough_and_unknown_schemes_are_ignored(self) -> None:
        good = sign_callback(CALLBACK_SECRET, "job-1", BODY)
        timestamp = good.split(",")[0]
        header = f"{timestamp},v2={'0' * 64},v0=legacy,v1={V2}, v2={v2_of(good)}"
        verify_signature(CALLBACK_SECRET, header, "job-1", BODY)
        self.assertEqual(herald_verify(header, "job-1", BODY), (0, ""))

    def test_a_ninth_v2_entry_is_not_looked_at(self) -> None:
        good = sign_callback(CALLBACK_SECRET, "job-1", BODY)
        timestamp = good.split(",")[0]
        ignored = f"{timestamp}{f',v2={V2}' * 8},v2={v2_of(good)},v2=not-hex"
        self.assertEqual(self.reason_of(ignored), "mismatch")
        self.assertEqual(herald_verify(ignored, "job-1", BODY), (1, str(SignatureError("mismatch"))))

    def test_a_missing_header_is_missing(self) -> None:
        self.assertEqual(self.reason_of(None), "missing")
        self.assertEqual(str(SignatureError("missing")), "the Herald-Signature header is missing")

    def test_malformed_headers_are_refused_as_herald_refuses_them(self) -> None:
        for bad in [
            "",
            "t=10",
            f"v2={V2}",
            f"t=,v2={V2}",
            f"t=-5,v2={V2}",
            f"t=+5,v2={V2}",
            f"t=1e3,v2={V2}",
            f"t= 10,v2={V2}",
            f"t=10,t=11,v2={V2}",
            f"t=10,t=10,v2={V2}",
            "t=10,v2=abc",
            f"t=10,v2={'A' * 64}",
            f"t=10,v2={'g' * 64}",
            f"t=10,v2={V2}0",
            f"t=99999999999999999999,v2={V2}",
            f"t=10;v2={V2}",
            f"t=10,v2={V2},",
            f"t=10,v2={V2},{'x' * 2000}",
            f"t=10,v2={V2},v0={'x' * 1000}",
            f"t=١٠,v2={V2}",  # noqa: RUF001 (Arabic-Indic digits: digits to Python, not to Herald)
        ]:
            with self.subTest(header=bad[:80]):
                self.assertEqual(self.reason_of(bad), "malformed")
                self.assertEqual(herald_verify(bad, "job-1", BODY), (1, str(SignatureError("malformed"))))


if __name__ == "__main__":
    unittest.main()
