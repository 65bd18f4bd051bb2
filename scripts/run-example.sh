#!/usr/bin/env bash
# The Flask example (examples/flask) on Herald, as `make example` runs it after building: Herald
# in memory on http://127.0.0.1:3000 with a JWT secret, the Flask app on :5000 and its export
# worker on :5001, from the venv setup made (examples/flask/.venv). Runs until Ctrl-C, then
# stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly venv=examples/flask/.venv
[ -x $venv/bin/flask ] || { echo "run-example: $venv is missing: run it with make example" >&2; exit 1; }

# Development secrets, public like the Makefile's: set your own for anything but a local run.
# Flask mints subscriber and publisher tokens with the JWT secret that Herald checks them with;
# Flask and its worker sign their requests to each other with the callback secret.
export HERALD_JWT_SECRET=${HERALD_JWT_SECRET:-dev-only-jwt-secret-for-the-flask-example}
export EXAMPLE_CALLBACK_SECRET=${EXAMPLE_CALLBACK_SECRET:-dev-only-example-callback-secret}
export EXAMPLE_SECRET_KEY=${EXAMPLE_SECRET_KEY:-dev-only-example-session-key}
readonly herald_addr=${EXAMPLE_HERALD_ADDR:-127.0.0.1:3000}
export HERALD_URL=http://$herald_addr
export EXAMPLE_ADDR=${EXAMPLE_ADDR:-127.0.0.1:5000}
export EXAMPLE_WORKER_ADDR=${EXAMPLE_WORKER_ADDR:-127.0.0.1:5001}
export EXAMPLE_WORKER_URL=http://$EXAMPLE_WORKER_ADDR

script=run-example
source scripts/processes.sh

start worker $venv/bin/python examples/flask/worker.py
wait_for worker curl -fs "$EXAMPLE_WORKER_URL/healthz"
# The page at EXAMPLE_ADDR opens Herald's /events across origins.
LEPTOS_SITE_ADDR=$herald_addr LEPTOS_SITE_ROOT=target/site LEPTOS_HASH_FILES=true \
  HERALD_CORS_ALLOW_ORIGINS=http://$EXAMPLE_ADDR start herald target/debug/herald
wait_for herald curl -fs "$HERALD_URL/healthz"
start flask $venv/bin/python examples/flask/app.py
wait_for flask curl -fs "http://$EXAMPLE_ADDR/login"

cat <<EOF

run-example: the example app is at http://$EXAMPLE_ADDR
Log in as alice (password alice) and, in a private window, as bob (password bob), then
click "Start export" in each: each page shows only its own exports, live.
Herald is at $HERALD_URL; Ctrl-C stops everything.

EOF
wait -n "${pids[@]}"
