#!/usr/bin/env bash
# Local demo: a development OpenID provider on 127.0.0.1:9000, a demo upstream app on
# 127.0.0.1:3000, and authgate on 127.0.0.1:8080 (admin on 127.0.0.1:9090) with gateway.toml.
# Open http://127.0.0.1:8080/ and log in with any name and any password. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_ready() { # name, stdout file
  for _ in $(seq 1 100); do grep -q '"ready":true' "$2" 2>/dev/null && return 0; sleep 0.1; done
  echo "error: $1 did not start; see $2 and ${2%.out}.err" >&2; exit 1
}

logs=$(mktemp -d)
(cd tests/support && exec node upstream.mjs 3000) >"$logs/upstream.out" 2>"$logs/upstream.err" & pids+=($!)
(cd tests/support && exec node op.mjs ../../scripts/demo-op.json) >"$logs/op.out" 2>"$logs/op.err" & pids+=($!)
wait_ready upstream "$logs/upstream.out"
wait_ready provider "$logs/op.out"

# The demo client's secret, registered in scripts/demo-op.json. Never use it anywhere else.
export AUTHGATE_CLIENT_SECRET=demo-secret-not-for-production
target/release/authgate -c gateway.toml & pids+=($!)

cat <<MSG

  authgate demo is running.
    app, behind the gateway:   http://127.0.0.1:8080/         (log in with any name)
    a public route:            http://127.0.0.1:8080/public/
    who am I:                  http://127.0.0.1:8080/oauth2/userinfo
    readiness:                 http://127.0.0.1:9090/readyz
  provider and upstream logs:  $logs
  Ctrl-C stops everything.

MSG
wait "${pids[2]}"
