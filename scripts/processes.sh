# Sourced by the scripts that run several processes until Ctrl-C (run-cluster.sh, run-example.sh):
# starts each with its log lines prefixed by its name, waits for each to answer, and stops them
# all when the script ends. The caller sets `script` to its name, for messages.
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND…: runs COMMAND in the background, each of its log lines prefixed with NAME.
start() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/$name | /") 2>&1 &
  pids+=($!)
}

# wait_for NAME CHECK…: waits up to 10 s for CHECK to succeed, giving up early if the process
# started last exited.
wait_for() {
  local name=$1; shift
  for _ in $(seq 100); do
    "$@" >/dev/null 2>&1 && return
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$script: $name exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "$script: $name did not start within 10 s" >&2
  exit 1
}
