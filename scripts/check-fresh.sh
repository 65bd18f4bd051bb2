#!/usr/bin/env bash
# Checks the README's promise on a fresh Debian: in a minimal root filesystem (debootstrap minbase)
# with only make, git, ca-certificates and rustup's stable Rust, a clone of HEAD passes
# `CI=true bash .ci/run` (that is `make test`, which sets up everything else itself).
#
#   scripts/check-fresh.sh [--release NAME]... [--dir DIR] [--keep] [--mirror URL] [--bare-toolchain]
#
#   --release NAME  a Debian release to check; repeatable (default: bookworm, then trixie)
#   --dir DIR       where the root filesystems go, DIR/<release> (default /var/tmp/herald-check-fresh);
#                   each needs about 15 GB
#   --keep          keep each root filesystem afterwards (default: remove it)
#   --mirror URL    the Debian mirror (default http://deb.debian.org/debian)
#   --bare-toolchain  copy the toolchain with the host's standard library only, as rustup-init's
#                   default profile leaves it: rustup then adds the wasm target that
#                   rust-toolchain.toml names, and in doing so updates stable to the newest release
#
# Runs as root (debootstrap, mount, chroot) and takes about 20 minutes a release on 2 cores, so it
# is not part of `make test`. What is copied from this machine: rustup with its proxies, its
# settings and the active toolchain (not the cargo registry, not the cargo tools installed here),
# the CA certificates this machine trusts (with the environment variables that point at them),
# /etc/resolv.conf. The committed HEAD is tested, not
# the working tree. The chroot shares this machine's network: ports 3000-3002 must be free while
# its Playwright tests run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
releases=()
work=/var/tmp/herald-check-fresh
keep=false
bare_toolchain=false
mirror=http://deb.debian.org/debian
security_mirror=http://deb.debian.org/debian-security

usage() { sed -n '6,15s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
  case $1 in
    --release) [ $# -ge 2 ] || { usage >&2; exit 2; }; releases+=("$2"); shift 2 ;;
    --dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; work=$2; shift 2 ;;
    --mirror) [ $# -ge 2 ] || { usage >&2; exit 2; }; mirror=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    --bare-toolchain) bare_toolchain=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ ${#releases[@]} -gt 0 ] || releases=(bookworm trixie)

say() { printf '\033[1mcheck-fresh:\033[0m %s\n' "$*"; }
die() { echo "check-fresh: $*" >&2; exit 1; }
duration() { printf '%dm %02ds' $(($1 / 60)) $(($1 % 60)); }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount, chroot)"
case $work in /* ) ;; *) work=$PWD/$work ;; esac
[[ $work != *[[:space:]]* ]] || die "--dir must not contain spaces"
work=${work%/}
mkdir -p "$work"
work=$(cd "$work" && pwd -P)

# The host's Rust, as the repo's rust-toolchain.toml selects it.
command -v rustup >/dev/null || die "rustup is not on PATH (try ~/.cargo/bin)"
rustup_bin=$(command -v rustup)
cargo_bin=$(dirname "$rustup_bin")
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
sysroot=$(cd "$repo" && rustc --print sysroot)
toolchain=$(basename "$sysroot")
host_triple=$(rustc -vV | sed -n 's/^host: //p')
[ -d "$rustup_home/toolchains/$toolchain" ] || die "$sysroot is not a toolchain in $rustup_home"

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

avail_gb=$(df --output=avail -BG "$work" | tail -1 | tr -dc 0-9)
[ "$avail_gb" -ge 15 ] || say "warning: $work has ${avail_gb} GB free; a release needs about 15 GB"

head_commit=$(git -C "$repo" rev-parse --short HEAD)
summary=$work/summary.txt
: >"$summary"

# Everything mounted below a root, deepest first.
mounts_under() { awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r; }

# Ends what still runs inside the chroot, unmounts, and removes the root unless --keep.
release_root() {
  local root=$1 remove=$2 sig p m
  for sig in TERM KILL; do
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -"$sig" "${p#/proc/}" 2>/dev/null
    done
    [ $sig = KILL ] || sleep 1
  done
  for m in $(mounts_under "$root"); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  if [ -n "$(mounts_under "$root")" ]; then
    echo "check-fresh: still mounted under $root, so it is left in place:" >&2
    mounts_under "$root" >&2
    return 1
  fi
  if $remove && [ -e "$root" ]; then
    rm -rf --one-file-system "$root"
  fi
}

# The host's CA and proxy settings, for the variables whose files exist in the chroot.
chroot_env() {
  local root=$1 v
  printf '%s\n' HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 "TERM=${TERM:-dumb}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  for v in SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE GIT_SSL_CAINFO \
    REQUESTS_CA_BUNDLE PIP_CERT CARGO_HTTP_CAINFO; do
    [ -n "${!v:-}" ] && [ -e "$root${!v}" ] && printf '%s=%s\n' "$v" "${!v}"
  done
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && printf '%s=%s\n' "$v" "${!v}"
  done
  return 0
}
in_chroot() {
  local root=$1; shift
  local env=()
  mapfile -t env < <(chroot_env "$root")
  chroot "$root" /usr/bin/env -i "${env[@]}" "$@"
}

# One release, in a subshell: its EXIT trap unmounts even when a step fails or it is interrupted.
check_release() {
  set -euo pipefail
  # Globals, not locals: the EXIT trap runs after this function has returned.
  rel=$1 root=$work/$1 step=start start=$SECONDS times="" tested="(not cloned)"
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  trap 'status=$?
        if [ $status -ne 0 ]; then
          echo "$rel: FAIL at $tested in $step after $(duration $((SECONDS - start))); before it: ${times:-nothing}" >>"$summary"
        fi
        release_root "$root" $(if $keep; then echo false; else echo true; fi) || true
        $keep && [ -d "$root" ] && say "kept $root"
        exit $status' EXIT

  begin() { step=$1; start=$SECONDS; say "$rel: $step"; }
  done_step() {
    t=$(duration $((SECONDS - start)))
    times+="$step $t, "
    say "$rel: $step took $t"
  }

  if [ -e "$root" ]; then
    say "$rel: removing the root filesystem left by an earlier run"
    release_root "$root" true
  fi

  begin debootstrap
  debootstrap --variant=minbase "$rel" "$root" "$mirror"
  done_step

  begin packages
  case $rel in
    sid | unstable) echo "deb $mirror $rel main" >"$root/etc/apt/sources.list" ;;
    *) printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
        "$mirror" "$rel" "$mirror" "$rel" "$security_mirror" "$rel" >"$root/etc/apt/sources.list" ;;
  esac
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  [ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  mount -t proc proc "$root/proc"
  mount --bind /sys "$root/sys" && mount --make-rslave "$root/sys"
  mount --bind /dev "$root/dev" && mount --make-rslave "$root/dev"
  mount --bind /dev/pts "$root/dev/pts" && mount --make-rslave "$root/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
  # This machine's own CAs (a registry proxy's, say) join the chroot's before ca-certificates
  # builds its bundle.
  if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  in_chroot "$root" apt-get update -qq
  in_chroot "$root" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends make git ca-certificates >/dev/null
  done_step

  begin rust
  mkdir -p "$root/root/.cargo/bin" "$root/root/.rustup/toolchains" "$root/root/.rustup/update-hashes"
  cp "$rustup_bin" "$root/root/.cargo/bin/rustup"
  for v in "$cargo_bin"/*; do
    if [ "$v" -ef "$rustup_bin" ] && [ "$(basename "$v")" != rustup ]; then
      ln -s rustup "$root/root/.cargo/bin/$(basename "$v")"
    fi
  done
  [ -f "$cargo_bin/../env" ] && cp "$cargo_bin/../env" "$root/root/.cargo/env"
  cp "$rustup_home/settings.toml" "$root/root/.rustup/settings.toml"
  mkdir -p "$root/root/.rustup/toolchains/$toolchain"
  cp -a "$sysroot/." "$root/root/.rustup/toolchains/$toolchain/"
  [ -f "$rustup_home/update-hashes/$toolchain" ] &&
    cp "$rustup_home/update-hashes/$toolchain" "$root/root/.rustup/update-hashes/"
  if $bare_toolchain; then
    for v in $(in_chroot "$root" rustup target list --installed --toolchain "$toolchain"); do
      [ "$v" = "$host_triple" ] || in_chroot "$root" rustup target remove --toolchain "$toolchain" "$v"
    done
  fi
  in_chroot "$root" rustc --version
  done_step

  begin clone
  git clone --quiet "$repo" "$root/root/herald"
  tested=$(git -C "$root/root/herald" rev-parse --short HEAD)
  say "$rel: testing $(git -C "$root/root/herald" log -1 --format='%h %s')"
  done_step

  begin "CI run"
  for v in 3000 3001 3002; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$v") 2>/dev/null; then
      say "warning: port $v is in use on this machine, which the chroot shares"
    fi
  done
  in_chroot "$root" bash -c 'cd /root/herald && CI=true bash .ci/run' 2>&1 | tee "$work/$rel-ci.log"
  done_step

  v=$(in_chroot "$root" bash -c 'cd /root/herald && rustc --version')
  echo "$rel: PASS at $tested with $v; ${times%, }" >>"$summary"
}

say "checking HEAD (now $head_commit) on ${releases[*]}, under $work"
failed=0
for rel in "${releases[@]}"; do
  if [ ! -e "/usr/share/debootstrap/scripts/$rel" ]; then
    say "$rel: skipped: $(debootstrap --version) has no script for it"
    echo "$rel: SKIPPED (debootstrap cannot build it)" >>"$summary"
    continue
  fi
  set +e
  (check_release "$rel")
  status=$?
  set -e
  [ $status -eq 0 ] || failed=1
  [ $status -lt 128 ] || break
done

say "summary (logs of the CI runs: $work/<release>-ci.log)"
cat "$summary"
exit $failed
