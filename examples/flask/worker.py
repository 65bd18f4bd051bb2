"""The example's export worker: takes a job from Flask, works on it, and calls Flask back, signed.

`POST /jobs {"job": id, "callback": url}`, signed by Flask with the callback secret, is answered
202 at once. After EXAMPLE_WORK_SECONDS the worker posts `{"status": "done", "result": {…}}` to
the callback URL with a `Herald-Signature` header. It retries a callback that got no 2xx answer
(Flask busy, or Herald away so that Flask could not publish) for up to a minute, with the same
body: Flask records an export once and publishes it with an idempotency key, so a retry never
shows the user an export twice.

Run it with `python worker.py`; it serves on EXAMPLE_WORKER_ADDR (port 0 picks a free one).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import herald  # noqa: E402

CALLBACK_SECRET = os.environ["EXAMPLE_CALLBACK_SECRET"]
WORK_SECONDS = float(os.environ.get("EXAMPLE_WORK_SECONDS", "3"))
# How long a callback is retried, and the waits between attempts (doubling up to the last).
CALLBACK_DEADLINE_SECONDS = 60
CALLBACK_WAITS = (0.5, 1, 2, 4)
# The largest job request worth reading.
MAX_BODY = 4096


def export(job: str, callback: str) -> None:
    """Works on one export, then reports it until Flask takes the report or the deadline passes."""
    time.sleep(WORK_SECONDS)
    body = json.dumps({"status": "done", "result": {"file": f"export-{job}.csv", "rows": random.randint(100, 9999)}})
    deadline = time.monotonic() + CALLBACK_DEADLINE_SECONDS
    for attempt in range(1, 1000):
        # Signed afresh each time: a signature's time must be recent.
        headers = {
            "Content-Type": "application/json",
            herald.SIGNATURE_HEADER: herald.sign_callback(CALLBACK_SECRET, job, body.encode()),
        }
        try:
            answer = requests.post(callback, data=body, headers=headers, timeout=30)
            if answer.ok:
                return
            reason = f"{answer.status_code} {answer.text[:200]}"
            if 400 <= answer.status_code < 500:
                log(f"callback for {job} refused, not retried: {reason}")
                return
        except requests.RequestException as err:
            reason = str(err)
        wait = CALLBACK_WAITS[min(attempt, len(CALLBACK_WAITS)) - 1]
        if time.monotonic() + wait > deadline:
            log(f"callback for {job} given up after {attempt} attempts: {reason}")
            return
        log(f"callback for {job} failed ({reason}); retrying in {wait} s")
        time.sleep(wait)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        if self.path != "/healthz":
            return self.answer(404, {"error": "not-found", "message": "GET /healthz or POST /jobs"})
        self.answer(200, {"status": "ok"})

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        if self.path != "/jobs":
            return self.answer(404, {"error": "not-found", "message": "GET /healthz or POST /jobs"})
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self.answer(400, {"error": "bad-length", "message": f"a job is 1 to {MAX_BODY} bytes"})
        body = self.rfile.read(length)
        try:
            job = json.loads(body)
            job_id, callback = job["job"], job["callback"]
            if not (isinstance(job_id, str) and isinstance(callback, str) and callback.startswith("http")):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "malformed-job", "message": 'expected {"job": id, "callback": url}'})
        try:
            herald.verify_signature(CALLBACK_SECRET, self.headers.get(herald.SIGNATURE_HEADER), job_id, body)
        except herald.SignatureError as err:
            return self.answer(401, {"error": f"signature-{err.reason}", "message": str(err)})
        threading.Thread(target=export, args=(job_id, callback), daemon=True).start()
        self.answer(202, {"job": job_id})

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the http.server name)
        log(format % args)


def log(message: str) -> None:
    print(f"worker: {message}", file=sys.stderr, flush=True)


def main() -> None:
    host, _, port = os.environ.get("EXAMPLE_WORKER_ADDR", "127.0.0.1:5001").rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    log(f"listening on http://{host}:{server.server_address[1]}")
    server.serve_forever()


if __name__ == "__main__":
    main()
