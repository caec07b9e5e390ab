# Sourced by the scripts that test against a local devnet (api-contract.sh, ui-flows.sh).
#
#   start_devnet BASE_PORT [devnet options...]
#
# Builds the debug binary, starts `medledger --json devnet` in a fresh temporary directory
# ($work/devnet, loopback only) and waits (up to 180 s) for its ready line in $work/ready.json.
# An EXIT trap stops it (Ctrl-C, then SIGKILL after 10 s) and removes $work.
start_devnet() {
  local base=$1
  shift
  cargo build --quiet --bin medledger
  work=$(mktemp -d)
  "$root/target/debug/medledger" --json devnet --dir "$work/devnet" --base-port "$base" "$@" \
    >"$work/ready.json" 2>"$work/devnet.log" &
  devnet=$!
  trap stop_devnet EXIT
  for _ in $(seq 1 1800); do
    if [ -s "$work/ready.json" ]; then return 0; fi
    if ! kill -0 "$devnet" 2>/dev/null; then echo "devnet exited:"; tail -40 "$work/devnet.log"; exit 1; fi
    sleep 0.1
  done
  echo "devnet not ready after 180 s"
  tail -40 "$work/devnet.log"
  exit 1
}

stop_devnet() {
  kill -INT "$devnet" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$devnet" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$devnet" 2>/dev/null || true
  rm -rf "$work"
}
