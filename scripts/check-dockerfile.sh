#!/usr/bin/env bash
# Herald's own checks of the Dockerfile, compose.yaml and deploy/nginx.conf, which no linter can
# know (hadolint lints the Dockerfile itself, dclint compose.yaml; `make lint` runs both first).
# Without a Docker engine (these machines have none): bash, grep, awk and Node.js only.
#
#   - the builder runs scripts/setup.sh, with every repository file that setup reads copied in
#     first, and the trimmed Cargo.lock it gets yields the same wasm-bindgen version as the real one;
#   - the builder builds the site and both binaries, and the image holds what the server reads:
#     both binaries, the site, and hash.txt beside the server (its hashed asset names);
#   - the image leaves RUST_LOG to the server's default, which keeps the per-request log lines;
#   - every file the Dockerfile copies exists, and .dockerignore neither drops one of them nor
#     lets in anything that git ignores;
#   - compose.yaml's services, mounts, secrets and ports agree with the Dockerfile and nginx.conf,
#     and nginx.conf proxies Server-Sent Events unbuffered, past Herald's keep-alive interval.
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
fail() { printf 'check-dockerfile: %s\n' "$*" >&2; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The Dockerfile as one instruction a line (continuations joined, comments dropped, spaces
# squeezed), each prefixed with its stage name and a tab.
awk '
  /^[[:space:]]*#/ { next }
  { line = line $0 } /\\$/ { sub(/\\$/, "", line); next }
  line ~ /[^[:space:]]/ {
    gsub(/[[:space:]]+/, " ", line); sub(/^ /, "", line)
    if (toupper(line) ~ /^FROM /) { n = split(line, w, " "); stage = w[n] }
    print (stage == "" ? "-" : stage) "\t" line
  }
  { line = "" }' Dockerfile >"$tmp/instructions"
stage() { awk -F'\t' -v s="$1" '$1 == s { print $2 }' "$tmp/instructions"; }
stage builder >"$tmp/builder"
stage runtime >"$tmp/runtime"

# --- The builder: setup first, with what it reads; then the build -------------------------------
setup_at=$(grep -nx 'RUN scripts/setup.sh' "$tmp/builder" | head -1 | cut -d: -f1 || true)
source_at=$(grep -nx 'COPY . .' "$tmp/builder" | head -1 | cut -d: -f1 || true)
if [[ -z $setup_at || -z $source_at || $setup_at -gt $source_at ]]; then
  fail "the builder does not run \`RUN scripts/setup.sh\` (the README's setup) before copying the source (\`COPY . .\`)"
else
  # The repository files that setup.sh names outside comments and outside its --test and
  # --example parts, which the image does not run (`npm ci --prefix DIR` reads DIR/package.json),
  # each copied in before it runs.
  sed -nE '/^if \$with_(tests|example); then$/,/^fi$/!p' scripts/setup.sh | grep -v '^[[:space:]]*#' >"$tmp/setup.sh"
  while IFS='=' read -r name value; do sed -i "s#\\\$$name\\b#$value#g" "$tmp/setup.sh"; done \
    < <(sed -nE 's/^(readonly )?([a-z_]+)=([A-Za-z0-9_./-]+)$/\2=\3/p' "$tmp/setup.sh")
  copied=$(head -n "$setup_at" "$tmp/builder" | awk '$1 == "COPY" && $2 !~ /^--from=/ { for (i = 2; i < NF; i++) print $i }')
  while read -r input; do
    [ "$input" = Cargo.lock ] && continue  # from the lockfile stage, checked below
    grep -qxF -- "$input" <<<"$copied" || fail "setup.sh needs $input, which the builder does not copy before running it"
  done < <({ echo scripts/setup.sh; git ls-files | grep -Fxf <(grep -oE '[A-Za-z0-9_./-]+' "$tmp/setup.sh") || true
    sed -nE 's/.*npm ci --prefix ([A-Za-z0-9_./-]+).*/\1\/package.json/p' "$tmp/setup.sh"; } | sort -u)
  grep -qx 'COPY --from=lockfile /setup/Cargo.lock Cargo.lock' <(head -n "$setup_at" "$tmp/builder") ||
    fail "the builder does not give setup.sh the lockfile stage's Cargo.lock"
fi

# The lockfile stage, run here on the real Cargo.lock: setup.sh's own awk must read the same
# wasm-bindgen version from what it leaves as from Cargo.lock.
mkdir -p "$tmp/full"
cp Cargo.lock "$tmp/full/Cargo.lock"
version_awk=$(grep -m1 -o "awk '/^name = \"wasm-bindgen\".*' Cargo.lock" scripts/setup.sh || true)
if ! stage lockfile | sed -n 's/^RUN //p' | sed "s#/full/#$tmp/full/#g; s#/setup\\b#$tmp/setup#g" | bash -e; then
  fail "the lockfile stage's RUN fails on this Cargo.lock"
elif [ -z "$version_awk" ]; then
  fail "setup.sh no longer reads wasm-bindgen's version with the awk this check knows: update it and the lockfile stage"
else
  want=$(eval "$version_awk") got=$(cd "$tmp/setup" && eval "$version_awk" 2>/dev/null || true)
  [[ -n $want && $want == "$got" ]] || fail "setup.sh reads wasm-bindgen '$got' from the trimmed Cargo.lock, '$want' from the real one"
fi

build=$(tail -n +"${source_at:-1}" "$tmp/builder" | sed -n 's/^RUN //p' | sed 's/ && /\n/g')
grep -qx 'cargo leptos build --release' <<<"$build" || fail "the builder does not run \`cargo leptos build --release\` after copying the source"
grep -qE '^cargo build --release .*--features ([a-z,]+,)?ssr\b.* --bin worker$' <<<"$build" || fail "the builder does not build the worker"

# --- The image ------------------------------------------------------------------------------------
for want in 'COPY --from=builder /src/target/release/herald /app/herald' \
  'COPY --from=builder /src/target/release/worker /app/worker' \
  'COPY --from=builder /src/target/site /app/site' \
  'COPY --from=builder /src/target/release/hash.txt /app/hash.txt' \
  'CMD ["/app/herald"]'; do
  grep -qxF -- "$want" "$tmp/runtime" || fail "the runtime stage lacks \`$want\`"
done
grep -q '^ENV .*LEPTOS_SITE_ROOT=/app/site\b' "$tmp/runtime" || fail "the runtime does not point LEPTOS_SITE_ROOT at /app/site, where the site is"
! grep -q 'RUST_LOG' "$tmp/runtime" || fail "the runtime sets RUST_LOG: the server's default keeps the request lines that docs/operations.md shows"
grep -q '^HEALTHCHECK .*http://127\.0\.0\.1:8080/healthz' "$tmp/runtime" || fail "the runtime's HEALTHCHECK does not ask /healthz"

# --- Build context --------------------------------------------------------------------------------
# Every COPY source from the context exists, and .dockerignore does not drop it.
ignored=$(grep -v '^[[:space:]]*\(#\|$\)' .dockerignore | sed 's#^/##; s#/$##')
while read -r src; do
  [ -e "$src" ] || fail "the Dockerfile copies $src, which is not in the repository"
  [ "$src" = . ] && continue
  while read -r pattern; do
    case "$src/" in "$pattern/"*) fail "the Dockerfile copies $src, which .dockerignore drops ($pattern)" ;; esac
  done <<<"$ignored"
done < <(cut -f2 "$tmp/instructions" | awk '$1 == "COPY" && $2 !~ /^--from=/ { for (i = 2; i < NF; i++) print $i }' | sort -u)
# The context is what a clean clone holds: whatever git ignores stays out of the image too.
while read -r pattern; do
  grep -qxF -- "$pattern" <<<"$ignored" || fail ".dockerignore lacks $pattern, which .gitignore ignores"
done < <(grep -v '^[[:space:]]*\(#\|$\)' .gitignore | sed 's#^/##; s#/$##')
grep -qx '\.env' .dockerignore || fail ".dockerignore lets compose's .env (secrets) into the build context"

# --- compose.yaml and nginx.conf ------------------------------------------------------------------
keep_alive=$({ grep -rhoE 'env = "HERALD_KEEP_ALIVE", default_value = "[0-9]+s"' src || true; } | grep -oE '[0-9]+s' | head -1 || true)
[ -n "$keep_alive" ] || fail "cannot find HERALD_KEEP_ALIVE's default in src/ (needed to check nginx's read timeout)"
KEEP_ALIVE=${keep_alive%s} node - <<'EOF' || failures=$((failures + 1))
const fs = require('fs');
// dclint's own YAML parser, as dclint finds it.
const YAML = require(require.resolve('yaml', { paths: [`${process.cwd()}/tools/node_modules/dclint`] }));
const errors = [];
const fail = (m) => errors.push(m);

const doc = YAML.parseDocument(fs.readFileSync('compose.yaml', 'utf8'), { merge: true });
if (doc.errors.length) { console.error(`check-dockerfile: compose.yaml: ${doc.errors[0].message}`); process.exit(1); }
const services = doc.toJS().services || {};
const dockerfile = fs.readFileSync('Dockerfile', 'utf8');
const nginx = fs.readFileSync('deploy/nginx.conf', 'utf8').replace(/#.*$/gm, '');

for (const name of ['redis', 'worker', 'lb']) if (!services[name]) fail(`compose.yaml has no "${name}" service`);
const instances = Object.keys(services).filter((n) => (services[n].environment || {}).HERALD_CALLBACK_URL);
if (instances.length < 2) fail(`compose.yaml runs ${instances.length} Herald instance(s), not 2`);
if (!/^redis:7(\b|$)/.test(services.redis?.image || '')) fail('the redis service is not redis:7');

for (const [name, s] of Object.entries(services)) {
  if (s.build !== undefined) {
    const context = typeof s.build === 'string' ? s.build : s.build.context || '.';
    const file = `${context}/${(typeof s.build === 'object' && s.build.dockerfile) || 'Dockerfile'}`;
    if (!fs.existsSync(file)) fail(`service ${name} builds from ${file}, which does not exist`);
  }
  for (const v of s.volumes || []) {
    const source = typeof v === 'string' ? v.split(':')[0] : v.source;
    if (/^[.\/]/.test(source) && !fs.existsSync(source)) fail(`service ${name} mounts ${source}, which does not exist`);
  }
  // Secrets come from the environment (or .env), never from this file.
  for (const [key, value] of Object.entries(s.environment || {})) {
    if (/(TOKEN|SECRET|KEY)$/.test(key) && !new RegExp(`^\\$\\{${key}:\\?[^}]+\\}$`).test(String(value)))
      fail(`service ${name} sets ${key} to "${value}" instead of \${${key}:?...}`);
  }
}

// Herald instances: each one's own callback URL, the worker, the shared secrets.
for (const name of instances) {
  const env = services[name].environment;
  if (env.HERALD_CALLBACK_URL !== `http://${name}:8080`) fail(`${name}'s HERALD_CALLBACK_URL is ${env.HERALD_CALLBACK_URL}, not http://${name}:8080`);
  if (env.HERALD_WORKER_URL !== 'http://worker:3002') fail(`${name}'s HERALD_WORKER_URL is not http://worker:3002`);
  // Redis: the instances ask Sentinels, each a service on 26379 that watches redis:6379 under the
  // URL's group name.
  const sentinelUrl = /^redis\+sentinel:\/\/([^/]+)\/([\w-]+)$/.exec(env.HERALD_REDIS_URL || '');
  if (!sentinelUrl) fail(`${name}'s HERALD_REDIS_URL is not redis+sentinel://HOST:PORT,.../NAME`);
  for (const host of sentinelUrl ? sentinelUrl[1].split(',') : []) {
    const [service, port] = host.split(':');
    const command = [].concat(services[service]?.command || []).join(' ');
    if (port !== '26379' || !command.includes('--sentinel') || !command.includes(`sentinel monitor ${sentinelUrl[2]} redis 6379 `))
      fail(`${name}'s HERALD_REDIS_URL names ${host}, which is no Sentinel on 26379 watching redis:6379 as ${sentinelUrl[2]}`);
  }
  for (const key of ['HERALD_PUBLISH_TOKEN', 'HERALD_CALLBACK_SECRET', 'HERALD_SESSION_KEY', 'HERALD_WORKER_TOKEN'])
    if (!(key in env)) fail(`${name} lacks ${key}`);
}
if (!Object.values(services).some((s) => [].concat(s.command || []).join(' ').includes('--replicaof redis 6379')))
  fail('no service is a replica of redis:6379, for the Sentinels to promote');
const worker = services.worker || {};
const workerEnv = worker.environment || {};
if (JSON.stringify(worker.command) !== '["/app/worker"]') fail('the worker service does not run /app/worker');
if (!/^COPY --from=builder \S+ \/app\/worker$/m.test(dockerfile)) fail("the image has no /app/worker for the worker service");
if (workerEnv.HERALD_WORKER_ADDR !== '0.0.0.0:3002') fail('the worker does not listen on 0.0.0.0:3002');
for (const key of ['HERALD_CALLBACK_SECRET', 'HERALD_WORKER_TOKEN'])
  if (!(key in workerEnv)) fail(`the worker lacks ${key}`);
if (!worker.healthcheck) fail("the worker overrides no healthcheck, so it inherits Herald's /healthz one on a port it does not serve");

// nginx: the instances are each of its upstreams, its port is the one published.
const expected = instances.map((n) => `${n}:8080`).sort();
for (const [, name, body] of nginx.matchAll(/^upstream\s+([\w-]+)\s*\{([^}]*)\}/gm)) {
  const upstream = [...body.matchAll(/^\s*server\s+([\w.-]+):(\d+)\s*;/gm)].map((m) => `${m[1]}:${m[2]}`).sort();
  if (JSON.stringify(upstream) !== JSON.stringify(expected)) fail(`nginx.conf's upstream ${name} is ${upstream}, compose.yaml's instances are ${expected}`);
}
const listen = (nginx.match(/^\s*listen\s+(?:[\d.]+:)?(\d+)\s*;/m) || [])[1];
const published = (services.lb?.ports || []).map((p) => String(p).split(':').pop());
if (!listen || !published.includes(listen)) fail(`nginx listens on ${listen}, the lb service publishes ${published}`);
for (const directive of ['least_conn', 'proxy_pass http://herald', 'proxy_http_version 1.1', 'proxy_set_header Connection ""', 'proxy_buffering off']) {
  const words = directive.split(' ').map((w) => w.replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&'));
  if (!new RegExp(`^\\s*${words.join('\\s+')}\\s*;`, 'm').test(nginx)) fail(`nginx.conf lacks \`${directive};\``);
}
const timeout = (nginx.match(/^\s*proxy_read_timeout\s+(\d+)(ms|s|m|h|d)?\s*;/m) || []);
const seconds = timeout[1] ? Number(timeout[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[timeout[2] || 's'] : 60;
if (!(seconds > Number(process.env.KEEP_ALIVE))) fail(`nginx's proxy_read_timeout (${seconds} s) is not above Herald's keep-alive (${process.env.KEEP_ALIVE} s)`);

for (const e of errors) console.error(`check-dockerfile: ${e}`);
process.exit(errors.length ? 1 : 0);
EOF

if [ "$failures" -gt 0 ]; then
  echo "check-dockerfile: $failures check(s) failed" >&2
  exit 1
fi
echo "check-dockerfile: Dockerfile, compose.yaml and deploy/nginx.conf agree with setup.sh and each other"
