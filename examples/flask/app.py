"""The seed's app, done right: a Flask backend that tells each user, live, that their export is done.

A user logs in and clicks "Start export". Flask hands the export to the worker (worker.py), which
calls Flask back with a signed callback when it is done. Flask verifies the signature, records
the result, and publishes `export.done` to the user's private topic `user.<id>` on Herald, with an
idempotency key. The user's page follows that topic with a token Flask mints, so each user hears
only their own exports.

The page never misses an export and never shows one twice, across a reload and a Herald restart:
- Flask renders the exports it knows, and the id of the last event it published to the user
  (read *before* the list, and every export is recorded before its event is published, so every
  event up to that id is already in the list); the page follows from that id, so Herald replays
  whatever was published since;
- rows are keyed by export, so an event the list already reflects changes nothing;
- when Herald cannot replay exactly (it restarted, or the id is too old), it says `reset`, and
  the page refetches the list.

Settings come from the environment (see README.md); `python app.py` serves on EXAMPLE_ADDR.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import requests
from flask import Flask, abort, jsonify, redirect, render_template, request, session, url_for
from werkzeug.serving import make_server

# clients/python/herald.py, Herald's backend helper: copy it into your own project.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import herald  # noqa: E402


@dataclass(frozen=True)
class User:
    id: str
    name: str
    password: str

    @property
    def topic(self) -> str:
        return f"user.{self.id}"


# Two demo users. A real app has its own accounts; Herald needs only a stable id per user.
USERS = {
    "alice": User(id="1", name="Alice", password="alice"),
    "bob": User(id="2", name="Bob", password="bob"),
}
USERS_BY_ID = {user.id: user for user in USERS.values()}


@dataclass
class Export:
    id: str
    user_id: str
    status: str = "running"  # running | done | failed
    file: Optional[str] = None
    rows: Optional[int] = None
    started: float = field(default_factory=time.time)


class Store:
    """The app's own state: its exports, and the last Herald event id published to each user.

    In memory for the example; a real app keeps both in its database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exports: dict[str, Export] = {}
        self._last_event_ids: dict[str, str] = {}

    def add(self, export: Export) -> None:
        with self._lock:
            self._exports[export.id] = export

    def get(self, export_id: str) -> Optional[Export]:
        with self._lock:
            return self._exports.get(export_id)

    def finish(self, export_id: str, status: str, file: Optional[str], rows: Optional[int]) -> Export:
        """Records an export's end once: a callback retried after the first one changes nothing."""
        with self._lock:
            export = self._exports[export_id]
            if export.status == "running":
                export.status, export.file, export.rows = status, file, rows
            return Export(**asdict(export))

    def listing(self, user_id: str) -> tuple[Optional[str], list[Export]]:
        """The last event id published to the user, then their exports, newest first.

        The id is read first: every export is recorded before its event is published, so the
        list holds at least every event up to that id, and a page that follows from it misses
        nothing and sees the rest replayed."""
        with self._lock:
            last_event_id = self._last_event_ids.get(user_id)
            exports = [Export(**asdict(e)) for e in self._exports.values() if e.user_id == user_id]
        return last_event_id, sorted(exports, key=lambda e: e.started, reverse=True)

    def published(self, user_id: str, event_id: str) -> None:
        with self._lock:
            self._last_event_ids[user_id] = event_id


def create_app(settings: Optional[dict] = None) -> Flask:
    """The app, configured from `settings` over the environment."""
    env = {**os.environ, **(settings or {})}
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=env.get("EXAMPLE_SECRET_KEY") or secrets.token_hex(32),
        # Lax: a form posted from another site carries no session cookie, so it cannot start an
        # export or log anyone out (the CSRF defence for this example's POSTs).
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    herald_url = env.get("HERALD_URL", "http://127.0.0.1:3000").rstrip("/")
    # Where browsers reach Herald, when that differs from where Flask does (a proxy, a container).
    herald_public_url = env.get("HERALD_PUBLIC_URL", herald_url).rstrip("/")
    jwt_secret = env["HERALD_JWT_SECRET"]
    worker_url = env.get("EXAMPLE_WORKER_URL", "http://127.0.0.1:5001").rstrip("/")
    callback_secret = env["EXAMPLE_CALLBACK_SECRET"]
    token_ttl = float(env.get("EXAMPLE_TOKEN_TTL", "600"))
    store = Store()

    def current_user() -> Optional[User]:
        return USERS_BY_ID.get(session.get("user_id", ""))

    def api_error(status: int, error: str, message: str):
        return jsonify(error=error, message=message), status

    @app.get("/")
    def home():
        user = current_user()
        if user is None:
            return redirect(url_for("login"))
        last_event_id, exports = store.listing(user.id)
        return render_template(
            "exports.html",
            user=user,
            exports=exports,
            last_event_id=last_event_id,
            herald_url=herald_public_url,
        )

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return render_template("login.html", users=USERS.values())
        user = USERS.get(request.form.get("username", ""))
        if user is None or not secrets.compare_digest(user.password, request.form.get("password", "")):
            return render_template("login.html", users=USERS.values(), failed=True), 401
        session.clear()
        session["user_id"] = user.id
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for("login"))

    @app.get("/herald-token")
    def herald_token():
        """A subscriber token for the user's own topic: what the page's `getToken` fetches."""
        user = current_user()
        if user is None:
            return api_error(401, "login-required", "log in to follow your exports")
        token = herald.mint_token(jwt_secret, subscribe=[user.topic], sub=f"user-{user.id}", ttl=token_ttl)
        return token, 200, {"Content-Type": "text/plain", "Cache-Control": "no-store"}

    @app.get("/exports")
    def list_exports():
        """The user's exports, as JSON: what the page refetches after a `reset`."""
        user = current_user()
        if user is None:
            return api_error(401, "login-required", "log in to see your exports")
        _, exports = store.listing(user.id)
        return jsonify([view(export) for export in exports])

    @app.post("/exports")
    def start_export():
        """Records an export and hands it to the worker, signed with the callback secret."""
        user = current_user()
        if user is None:
            return api_error(401, "login-required", "log in to start an export")
        export = Export(id=secrets.token_hex(8), user_id=user.id)
        store.add(export)
        body = json.dumps({"job": export.id, "callback": url_for("callback", export_id=export.id, _external=True)})
        try:
            answer = requests.post(
                f"{worker_url}/jobs",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    herald.SIGNATURE_HEADER: herald.sign_callback(callback_secret, export.id, body.encode()),
                },
                timeout=5,
            )
            answer.raise_for_status()
        except requests.RequestException as err:
            store.finish(export.id, "failed", None, None)
            app.logger.warning("the worker did not take export %s: %s", export.id, err)
            return api_error(503, "worker-unavailable", "the export worker is not available; try again later")
        return jsonify(view(export)), 201

    @app.post("/callbacks/<export_id>")
    def callback(export_id: str):
        """The worker reports an export's end: verified, recorded once, published to its user.

        A retried callback publishes again with the same idempotency key, which Herald turns into
        the same event: that is how an export whose first publish failed still reaches its user."""
        body = request.get_data()
        try:
            herald.verify_signature(callback_secret, request.headers.get(herald.SIGNATURE_HEADER), export_id, body)
        except herald.SignatureError as err:
            return api_error(401, f"signature-{err.reason}", str(err))
        if store.get(export_id) is None:
            return api_error(404, "unknown-export", f"no export {export_id}")
        try:
            report = json.loads(body)
            status = report["status"]
            result = report.get("result") or {}
            if status not in ("done", "failed"):
                raise ValueError(status)
        except (ValueError, KeyError, TypeError):
            return api_error(400, "malformed-callback", 'the body must be {"status": "done" | "failed", "result": {…}}')
        export = store.finish(export_id, status, result.get("file"), result.get("rows"))
        user = USERS_BY_ID[export.user_id]
        publisher = herald.mint_token(jwt_secret, publish=[user.topic], sub="example-app", ttl=60)
        try:
            published = herald.publish(
                herald_url,
                publisher,
                user.topic,
                view(export),
                event=f"export.{export.status}",
                idempotency_key=f"export-{export.id}-{export.status}",
            )
        except herald.PublishUnavailable as err:
            # The worker retries the callback; the key makes every retry the same event.
            return api_error(503, "herald-unavailable", f"could not publish to Herald: {err}")
        except herald.PublishRefused as err:
            # A setting is wrong (the secret, the topic patterns): no retry can help.
            app.logger.error("Herald refused export %s's event: %s", export.id, err)
            return api_error(502, "herald-refused", f"Herald refused the event: {err}")
        store.published(user.id, published.id)
        return jsonify(event=published.id, duplicate=published.duplicate)

    return app


def view(export: Export) -> dict:
    """An export as the page and its events show it."""
    return {"id": export.id, "status": export.status, "file": export.file, "rows": export.rows}


def main() -> None:
    """Serves on EXAMPLE_ADDR (host:port; port 0 picks a free one) and says where."""
    host, _, port = os.environ.get("EXAMPLE_ADDR", "127.0.0.1:5000").rpartition(":")
    server = make_server(host, int(port), create_app(), threaded=True)
    print(f"example app listening on http://{host}:{server.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
