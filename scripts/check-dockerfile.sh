#!/usr/bin/env bash
# Checks the Dockerfile, compose.yaml and deploy/nginx.conf without a Docker engine (these machines
# have none), with bash, grep, awk and Node.js only. `make lint` runs it after the two linters.
#
#   - the builder runs scripts/setup.sh, with every repository file that setup reads copied in
#     first, then cooks the dependencies with cargo-leptos's own features and profiles (read from
#     Cargo.toml), then builds with `cargo leptos build --release` and builds the worker;
#   - the trimmed Cargo.lock given to setup yields the same wasm-bindgen version as the real one;
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

# The Dockerfile as one instruction a line (continuations joined, comments dropped), each line
# prefixed with its stage name.
awk '
  /^[[:space:]]*#/ { next }
  { line = line $0 }
  /\\$/ { sub(/\\$/, "", line); next }
  line ~ /[^[:space:]]/ {
    gsub(/[[:space:]]+/, " ", line); sub(/^ /, "", line)
    if (toupper(line) ~ /^FROM /) { n = split(line, w, " "); stage = (n >= 4 ? w[4] : w[2]) }
    print (stage == "" ? "-" : stage) "\t" line
  }
  { line = "" }
' Dockerfile >"$tmp/instructions"
stage() { awk -F'\t' -v s="$1" '$1 == s { print $2 }' "$tmp/instructions"; }
stage builder >"$tmp/builder"
stage runtime >"$tmp/runtime"
line_of() { { grep -nxF -- "$1" "$2" || true; } | head -1 | cut -d: -f1; }
has() { grep -qxF -- "$1" "$2" || fail "${3:-$2}: no instruction \`$1\`"; }

# --- The builder: setup, dependencies, build -----------------------------------------------------
setup_at=$(line_of 'RUN scripts/setup.sh' "$tmp/builder")
copy_all_at=$(line_of 'COPY . .' "$tmp/builder")
if [ -z "$setup_at" ]; then
  fail "the builder does not run \`RUN scripts/setup.sh\` (the README's setup, without --test)"
  setup_at=0
fi
[ -n "$copy_all_at" ] || { fail "the builder never copies the source (\`COPY . .\`)"; copy_all_at=0; }
[ "$setup_at" -lt "$copy_all_at" ] || fail "the builder runs setup.sh after copying the whole source, so any change rebuilds the tools"

# Every repository file that setup.sh names outside comments (with its simple variables such as
# node_dir expanded) must be copied in before it runs; end2end/ and benches/peers/ are only for
# `setup.sh --test`, which the image does not run.
# `npm ci --prefix DIR` reads DIR/package.json as well.
grep -v '^[[:space:]]*#' scripts/setup.sh >"$tmp/setup.sh"
while IFS='=' read -r name value; do
  sed -i "s#\\\$$name\\b#$value#g; s#\\\${$name}#$value#g" "$tmp/setup.sh"
done < <(sed -nE 's/^(readonly )?([a-z_]+)=([A-Za-z0-9_./-]+)$/\2=\3/p' "$tmp/setup.sh")
{
  git ls-files | while read -r f; do if grep -qF -- "$f" "$tmp/setup.sh"; then echo "$f"; fi; done
  sed -nE 's/.*npm ci --prefix ([A-Za-z0-9_./-]+).*/\1\/package.json/p' "$tmp/setup.sh"
} | grep -v -e '^end2end/' -e '^benches/peers/' | sort -u >"$tmp/setup-inputs"
# Where each COPY before setup puts its files (WORKDIR /src): "context|stage DEST SOURCE".
head -n "$setup_at" "$tmp/builder" | awk '
  $1 == "COPY" {
    from = ($2 ~ /^--from=/); dst = $NF; sub(/^\.\//, "", dst)
    for (i = 2 + from; i < NF; i++) {
      src = $i; n = split(src, part, "/")
      print (from ? "stage" : "context"), (dst ~ /\/$/ ? dst part[n] : dst), src
    }
  }' >"$tmp/pre-setup-copies"
[ "$setup_at" -gt 0 ] && while read -r input; do
  read -r kind src < <(awk -v f="$input" '$2 == f { print $1, $3 }' "$tmp/pre-setup-copies") || true
  case "${kind:-}" in
    context) [ "$src" = "$input" ] || fail "the builder copies $src to $input before setup" ;;
    stage) [ "$input" = Cargo.lock ] || fail "setup.sh's $input comes from another stage; only Cargo.lock is checked for that" ;;
    *) fail "setup.sh reads $input, which the builder does not copy before \`RUN scripts/setup.sh\`" ;;
  esac
  kind='' src=''
done <"$tmp/setup-inputs"
grep -qx 'Cargo.lock' "$tmp/setup-inputs" || fail "setup.sh no longer reads Cargo.lock: drop the Dockerfile's lockfile stage"

# The lockfile stage, run here on the real Cargo.lock: setup.sh's own awk must read the same
# wasm-bindgen version from its output as from Cargo.lock.
mkdir -p "$tmp/stage/full" "$tmp/real"
cp Cargo.lock "$tmp/stage/full/Cargo.lock"
cp Cargo.lock "$tmp/real/Cargo.lock"
stage lockfile | sed -n 's/^RUN //p' | sed "s#/full/#$tmp/stage/full/#g; s#/setup\\b#$tmp/stage/setup#g" >"$tmp/lockfile.sh"
if [ ! -s "$tmp/lockfile.sh" ] || ! bash -e "$tmp/lockfile.sh"; then
  fail "the lockfile stage's RUN failed on this Cargo.lock"
else
  version_awk=$(grep -m1 -o "awk '/^name = \"wasm-bindgen\".*' Cargo.lock" scripts/setup.sh || true)
  if [ -z "$version_awk" ]; then
    fail "setup.sh no longer reads wasm-bindgen's version with the awk this check knows: update the lockfile stage and this check"
  else
    want=$(cd "$tmp/real" && eval "$version_awk") || want=''
    got=$(cd "$tmp/stage/setup" && eval "$version_awk" 2>/dev/null) || got=''
    [[ -n $want && $want == "$got" ]] ||
      fail "setup.sh reads wasm-bindgen '$got' from the trimmed Cargo.lock, '$want' from the real one"
  fi
fi

# The planner and the builder share their first lines (image, toolchain, cargo-chef), so that
# the build runs them once.
prelude() { stage "$1" | sed '/^WORKDIR /q' | sed 1d; }
[ "$(prelude planner)" = "$(prelude builder)" ] || fail "the planner and the builder no longer start with the same lines up to WORKDIR"
[ "$(stage planner | head -1 | cut -d' ' -f2)" = "$(stage builder | head -1 | cut -d' ' -f2)" ] ||
  fail "the planner and the builder start from different images"
grep -q '^RUN cargo install cargo-chef --version [^ ]* --locked$' <(prelude builder) || fail "cargo-chef is not installed with a pinned --version and --locked"
grep -qx 'ARG CARGO_CHEF_VERSION=[0-9][0-9.]*' <(stage -) || fail "no pinned ARG CARGO_CHEF_VERSION before the first FROM"
grep -qx 'RUN cargo chef prepare --recipe-path recipe.json' <(stage planner) || fail "the planner does not run cargo chef prepare"

# The cook steps: before the source, with the features and profiles cargo-leptos builds with.
leptos() { sed -n "/^\[package.metadata.leptos\]/,/^\[/s/^$1 = //p" Cargo.toml | tr -d '[]" ' | tr ',' ' '; }
bin_features=$(leptos bin-features) lib_features=$(leptos lib-features)
lib_profile=$(leptos lib-profile-release) bin_target=$(leptos bin-target)
front_dir=$(leptos front-target-dir)
cook_at=$({ grep -n '^RUN cargo chef cook' "$tmp/builder" || true; } | cut -d: -f1 | head -1)
cook=$({ grep '^RUN cargo chef cook' "$tmp/builder" || true; } | sed 's/^RUN //; s/ && /\n/g')
[[ -n $cook_at && $cook_at -lt $copy_all_at ]] || fail "the builder does not cook the dependencies before \`COPY . .\`"
grep -q '^COPY --from=planner /src/recipe.json recipe.json$' "$tmp/builder" || fail "the builder does not take recipe.json from the planner"
server_cook=$(grep -- '--release' <<<"$cook" || true)
wasm_cook=$(grep -- '--target wasm32-unknown-unknown' <<<"$cook" || true)
for want in "--features ${bin_features// /,}" "--bin $bin_target"; do
  grep -qe " $want\( \|$\)" <<<"$server_cook" || fail "the server's cook step lacks \`$want\` (Cargo.toml's leptos metadata)"
done
grep -qe " --bin worker\( \|$\)" <<<"$server_cook" || fail "the server's cook step does not cook the worker's dependencies (--bin worker)"
for want in "--features ${lib_features// /,}" "--profile ${lib_profile:-release}" "--target-dir ${front_dir:-target/front}"; do
  grep -qe " $want\( \|$\)" <<<"$wasm_cook" || fail "the wasm cook step lacks \`$want\` (Cargo.toml's leptos metadata)"
done

build=$(sed -n "$((copy_all_at + 1)),\$p" "$tmp/builder" | { grep '^RUN ' || true; } | sed 's/^RUN //; s/ && /\n/g')
grep -qx 'cargo leptos build --release' <<<"$build" || fail "the builder does not run \`cargo leptos build --release\` after copying the source"
grep -qE '^cargo build --release .*--features ([a-z,]+,)?ssr\b.* --bin worker$' <<<"$build" || fail "the builder does not build the worker (cargo build --release --features ssr --bin worker)"

# --- The runtime ----------------------------------------------------------------------------------
stage runtime | head -1 | grep -qx 'FROM debian:bookworm-slim AS runtime' || fail "the runtime is not debian:bookworm-slim"
for want in 'COPY --from=builder /src/target/release/herald /app/herald' \
  'COPY --from=builder /src/target/release/worker /app/worker' \
  'COPY --from=builder /src/target/site /app/site' \
  'COPY --from=builder /src/target/release/hash.txt /app/hash.txt' \
  'EXPOSE 8080' 'CMD ["/app/herald"]'; do
  has "$want" "$tmp/runtime" "the runtime stage"
done
# The asset names are content-hashed (Cargo.toml, hash-files): the server must be told so.
grep -q 'LEPTOS_HASH_FILES=true' "$tmp/runtime" || fail "the runtime stage does not set LEPTOS_HASH_FILES=true"
user=$(sed -n 's/^USER //p' "$tmp/runtime" | tail -1)
[[ -n $user && $user != root && $user != 0 ]] || fail "the runtime runs as root"
grep -q '^HEALTHCHECK .*http://127\.0\.0\.1:8080/healthz' "$tmp/runtime" || fail "the runtime's HEALTHCHECK does not ask /healthz"

# --- Build context --------------------------------------------------------------------------------
# Every COPY source from the context exists, and .dockerignore does not drop it.
while read -r src; do
  [ -e "$src" ] || fail "the Dockerfile copies $src, which is not in the repository"
  [ "$src" = . ] && continue
  while read -r pattern; do
    case "$src/" in "${pattern%/}/"*) fail "the Dockerfile copies $src, which .dockerignore drops ($pattern)" ;; esac
  done < <(grep -v '^[[:space:]]*\(#\|$\)' .dockerignore | sed 's#^/##')
done < <(cut -f2 "$tmp/instructions" | awk '$1 == "COPY" && $2 !~ /^--from=/ { for (i = 2; i < NF; i++) print $i }' | sort -u)
# The context is what a clean clone holds: whatever git ignores stays out of the image too.
while read -r pattern; do
  grep -qxF -- "$pattern" <(grep -v '^[[:space:]]*\(#\|$\)' .dockerignore | sed 's#^/##; s#/$##') ||
    fail ".dockerignore lacks $pattern, which .gitignore ignores"
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
  if (env.HERALD_REDIS_URL !== 'redis://redis:6379') fail(`${name}'s HERALD_REDIS_URL is not redis://redis:6379`);
  for (const key of ['HERALD_PUBLISH_TOKEN', 'HERALD_CALLBACK_SECRET', 'HERALD_SESSION_KEY', 'HERALD_WORKER_TOKEN'])
    if (!(key in env)) fail(`${name} lacks ${key}`);
}
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
echo "check-dockerfile: Dockerfile, compose.yaml and deploy/nginx.conf agree with setup.sh, Cargo.toml and each other"
