#!/usr/bin/env bash
# Runs the job worker (src/bin/worker.rs) in the background for as long as the given command
# runs: `make run` and the end-to-end tests use it, so that "Start job" has a worker to call.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --features ssr --bin worker
target/debug/worker &
worker=$!
trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT

# Wait until the worker answers (any HTTP status will do), for at most 10 s.
worker_url=${HERALD_WORKER_URL:-http://127.0.0.1:3002}
for _ in $(seq 100); do
  curl -s -o /dev/null "$worker_url/jobs" && break
  kill -0 "$worker" 2>/dev/null || { echo "with-worker: the worker exited" >&2; exit 1; }
  sleep 0.1
done

"$@"
