#!/usr/bin/env bash
# Bundle sizes and time to first tick on a release build (`make bench` builds it first).
# Serves target/release/herald on a free loopback port, measures, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The asset names carry content hashes (Cargo.toml, hash-files): herald.<hash>.wasm and so on.
for file in target/site/pkg/herald.*.wasm target/site/pkg/herald.*.js target/site/pkg/herald.*.css; do
  printf '%-32s %8d bytes  %8d bytes gzipped\n' "$file" "$(stat -c %s "$file")" "$(gzip -9c "$file" | wc -c)"
done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_ADDR="127.0.0.1:$port" LEPTOS_ENV=PROD LEPTOS_HASH_FILES=true RUST_LOG=warn \
  target/release/herald &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

(cd end2end && node bench/first-tick.mjs "http://127.0.0.1:$port" "${LOADS:-10}")
