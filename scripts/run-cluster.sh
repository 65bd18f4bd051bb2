#!/usr/bin/env bash
# Two Herald instances sharing one Redis, as behind a load balancer (`make run-cluster` builds them
# first): pages on http://127.0.0.1:3000 and :3001, a throwaway redis-server on 127.0.0.1:6390
# with nothing on disk, and the job worker. Runs until Ctrl-C, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

# The development secrets come from the Makefile; both instances must share them.
: "${HERALD_PUBLISH_TOKEN:?run it with make run-cluster}" "${HERALD_SESSION_KEY:?run it with make run-cluster}"
command -v redis-server >/dev/null || { echo "run-cluster: redis-server is missing: make setup-test installs it" >&2; exit 1; }

readonly redis_port=6390 dir=target/cluster
export HERALD_REDIS_URL=redis://127.0.0.1:$redis_port/
# Callbacks go to 3001 whichever instance started the job: the job's state is in Redis, so the
# page on 3000 still sees it finish.
export HERALD_CALLBACK_URL=http://127.0.0.1:3001
# The server binary finds its hashed asset names in target/debug/hash.txt (Cargo.toml, hash-files).
export LEPTOS_SITE_ROOT=target/site LEPTOS_HASH_FILES=true

cargo build --features ssr --bin worker

script=run-cluster
source scripts/processes.sh

# A fresh directory each time, so that no earlier run's data comes back.
rm -rf "$dir" && mkdir -p "$dir"
start redis redis-server --port $redis_port --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no --daemonize no
wait_for redis redis-cli -p $redis_port ping
start worker target/debug/worker
wait_for worker curl -s -o /dev/null "${HERALD_WORKER_URL:-http://127.0.0.1:3002}/jobs"
for port in 3000 3001; do
  LEPTOS_SITE_ADDR=127.0.0.1:$port start "herald-$port" target/debug/herald
  wait_for "herald on $port" curl -fs "http://127.0.0.1:$port/healthz"
done

cat <<EOF

run-cluster: Herald on http://127.0.0.1:3000 and http://127.0.0.1:3001, sharing Redis on 127.0.0.1:$redis_port.
An event published on 3000 reaches a subscriber of 3001. In one terminal:

  curl -N 'http://127.0.0.1:3001/events?topic=demo'

and in another:

  curl -H 'Authorization: Bearer $HERALD_PUBLISH_TOKEN' -H 'content-type: application/json' -d '{"topic":"demo","data":"hello"}' http://127.0.0.1:3000/publish

The operator page, with both instances on it: http://127.0.0.1:3000/admin (the admin token is
\$HERALD_ADMIN_TOKEN, the Makefile's development one unless you set your own).

Ctrl-C stops everything.

EOF
# Until Ctrl-C, or until one of them exits: then the others stop too.
wait -n "${pids[@]}"
