#!/usr/bin/env bash
# The load benchmark: authgate against nginx and against itself, on loopback, bounded in time.
#
#   benches/load/run.sh                     # 30 rounds x 7 runs x 2 s, 32 connections (~10 min)
#   CONNECTIONS=1 CASES="2 3 4 2" benches/load/run.sh   # latency without a queue (~5 min)
#   ROUNDS=5 DURATION=10 CONNECTIONS=64 benches/load/run.sh
#   MODE=profile benches/load/run.sh        # instructions per request under callgrind instead
#   MODE=perf benches/load/run.sh           # where the gateway's CPU time goes, under real load
#
# MODE=profile runs authgate (profiling build: release + symbols) under valgrind's callgrind,
# sends REQUESTS requests of each authgate case over one keep-alive connection, and reports
# instructions per request per case (repeatable whatever the machine's load, unlike seconds)
# and the functions that cost the most, into target/bench-load/profile/.
#
# MODE=perf samples the gateway (profiling build) with `perf record -e cpu-clock` while wrk loads
# each authgate case named in CASES for DURATION seconds, and reports per case the share of time
# in the kernel, in authgate's own code and in the rest (pingora, tokio, allocator), plus the top
# symbols, into target/bench-load/perf/, and the time per request by crate in every case
# (perf/by-crate.md: case 3's extra cost over case 2 reads off a row). Unlike callgrind it sees
# the kernel and the CPU's SHA extensions.
#
# Installs what is missing (wrk, nginx, cmake, the npm packages), builds authgate in release
# mode, then starts on 127.0.0.1:
#   - an upstream: nginx returning a small static body (never the bottleneck);
#   - case 1: nginx as a plain reverse proxy to it;
#   - authgate A (cases 2, 3, 4, 6) and authgate B (case 5, a one-entry token cache);
#   - the development OpenID provider (tests/support/op.mjs) that authgate discovers, and logs
#     a user in for case 3.
# Cases, measured interleaved, same wrk threads, connections and duration for all. Every round
# runs them in the order 2 3 4 2 1 5 6 (CASES to change it): case 2 runs twice, just before and
# just after cases 3 and 4, because the machine's speed drifts within seconds and ratios are taken
# between runs next to each other in time.
#   1 nginx reverse proxy          2 authgate, public route       3 authgate, session cookie
#   4 authgate, RS256 JWT (cached) 5 authgate, fresh RS256 JWT per request (full verify)
#   6 authgate, unauthenticated browser request (302 to login)
#   7 authgate, public route carrying case 4's Authorization header: the token's bytes without
#     any authentication (not in the default order: CASES="2 7 4 2"); the header goes upstream as
#     sent, where case 4's verified token does not
#   8, 9 cases 2 and 4 against authgate C: authgate A's configuration with the lines of VARIANT
#     added to its [server] section (and those of VARIANT_HEADERS to its [headers] section), to
#     measure a setting against the default in the same run:
#     VARIANT='work_stealing = false' CASES="2 8 4 9 2" benches/load/run.sh
#     VARIANT_HEADERS='pass_authorization_header = true' CASES="2 8 4 9 2" benches/load/run.sh
# Per case and round: requests/s, p50/p99/p99.9 latency, errors, CPU time per request of the
# server processes (from /proc), RSS. The summary gives medians over rounds and ratios to
# cases 2 and 1. Raw lines go to target/bench-load/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MODE=${MODE:-load}
# Many short rounds rather than few long ones: for about the same time, each median stands on 30
# pairs instead of 10 (BENCHMARKS.md, "Why 30 rounds of 2 s"). MODE=perf samples one run per
# case, 8 s by default.
ROUNDS=${ROUNDS:-30}
DURATION=${DURATION:-$([ "$MODE" = perf ] && echo 8 || echo 2)}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
POOL=${POOL:-6000}
# The run order of each round (see above).
CASES=${CASES:-2 3 4 2 1 5 6}
# The server under test (authgate, or nginx as the proxy) runs on SERVER_CPU; wrk, the static
# upstream and the provider on CLIENT_CPU, so the server's CPU time per request is its own.
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
on_server() { taskset -c "$SERVER_CPU" "$@"; }
on_client() { taskset -c "$CLIENT_CPU" "$@"; }

scripts/install-deps.sh
if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
REQUESTS=${REQUESTS:-2000}
if [ "$MODE" = perf ]; then
  command -v perf >/dev/null || { echo "MODE=perf needs perf (linux-tools)" >&2; exit 1; }
fi
if [ "$MODE" = profile ]; then
  command -v valgrind >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; $SUDO apt-get install -y -qq valgrind >/dev/null; }
fi
if [ "$MODE" = profile ] || [ "$MODE" = perf ]; then
  cargo build --profile profiling --locked --bin authgate
else
  cargo build --release --locked --bin authgate
fi

OUT=$ROOT/target/bench-load
rm -rf "$OUT"; mkdir -p "$OUT"
WORK=$(mktemp -d)
pids=()
# A process and all its descendants (a recorded pid may be a wrapper; nginx has workers).
family() { local p; echo "$1"; for p in $(pgrep -P "$1" || true); do family "$p"; done; }
cleanup() {
  local p all=()
  for p in "${pids[@]}"; do all+=($(family "$p")); done
  kill -TERM "${all[@]}" 2>/dev/null || true
  # authgate drains for its grace period after SIGTERM: wait for everything to be gone, then
  # make sure, so the script never leaves a server behind.
  alive() { local q; for q in "${all[@]}"; do kill -0 "$q" 2>/dev/null && return 0; done; return 1; }
  for _ in $(seq 1 150); do alive || break; sleep 0.1; done
  kill -KILL "${all[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

P_UP=$(free_port); P_NGX=$(free_port); P_GW=$(free_port); P_ADM=$(free_port)
P_GW5=$(free_port); P_ADM5=$(free_port); P_OP=$(free_port)
P_GWC=$(free_port); P_ADMC=$(free_port)
VARIANT=${VARIANT:-}
VARIANT_HEADERS=${VARIANT_HEADERS:-}
# Authgate C runs only when a case names it.
WITH_C=$(grep -qwE "8|9" <<<"$CASES" && echo yes || true)
GWC_PID=

# --- nginx: the upstream (static body) and case 1 (reverse proxy with a keep-alive pool, setting
# the same X-Forwarded-For, -Proto and -Host as authgate, as a reverse proxy in front of an app
# is usually configured) --------------------------------------------------------------------------
nginx_conf() { # name, body of the server block
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/nginx.conf" <<EOF
user root;
worker_processes 1;
error_log $WORK/$1/error.log warn;
pid $WORK/$1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1/body; proxy_temp_path $WORK/$1/proxy;
  fastcgi_temp_path $WORK/$1/fcgi; uwsgi_temp_path $WORK/$1/uwsgi; scgi_temp_path $WORK/$1/scgi;
  keepalive_requests 1000000;
  $2
}
EOF
}
# The upstream counts the connections it accepted (stub_status): the check that the proxies reuse
# their upstream connections (keep-alive pools) rather than open one per request.
nginx_conf upstream "server { listen 127.0.0.1:$P_UP; location / { default_type text/plain; return 200 'ok\n'; }
  location = /nginx_status { stub_status; } }"
nginx_conf proxy "upstream app { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_NGX; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Host \$http_host; } }"
on_client nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -g 'daemon off;' & pids+=($!)
on_server nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -g 'daemon off;' & pids+=($!); NGX_PID=$!
wait_port "$P_UP"; wait_port "$P_NGX"

# --- the OpenID provider, keys and tokens -------------------------------------------------------
cat >"$WORK/op.json" <<EOF
{"port": $P_OP, "clients": [{"client_id": "bench", "client_secret": "bench-secret-0123456789",
  "redirect_uris": ["http://127.0.0.1:$P_GW/oauth2/callback"], "grant_types": ["authorization_code"]}]}
EOF
(cd tests/support && exec taskset -c "$CLIENT_CPU" node op.mjs "$WORK/op.json") >"$WORK/op.out" 2>"$WORK/op.err" & pids+=($!)
wait_port "$P_OP"
(cd tests/support && node "$ROOT/benches/load/tokens.mjs" keys "$WORK")
(cd tests/support && node "$ROOT/benches/load/tokens.mjs" mint "$WORK" https://load.bench 1 "$WORK/one.txt")
echo "minting $POOL distinct RS256 tokens for case 5..."
(cd tests/support && node "$ROOT/benches/load/tokens.mjs" mint "$WORK" https://load.bench "$POOL" "$WORK/pool.txt")

# --- authgate ---------------------------------------------------------------------------------
gateway_conf() { # listen port, admin port, token cache capacity, more [server], [headers] lines
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
threads = ${GW_THREADS:-1}
${4:-}
log_level = "warn"
access_log = false
pid_file = "$WORK/gw-$1.pid"
upgrade_sock = "$WORK/gw-$1.sock"
[upstream]
url = "http://127.0.0.1:$P_UP"
[oidc]
issuer = "http://127.0.0.1:$P_OP"
client_id = "bench"
client_secret = "bench-secret-0123456789"
redirect_url = "http://127.0.0.1:$P_GW/oauth2/callback"
scopes = ["openid", "profile", "email", "groups"]
[session]
cookie_secure = false
[headers]
${5:-}
[bearer]
cache_capacity = $3
[[bearer.issuers]]
issuer = "https://load.bench"
audiences = ["api"]
algorithms = ["RS256"]
pem_files = ["$WORK/rs256.pem"]
[[routes]]
name = "public"
prefix = "/public"
auth = "public"
EOF
}
if [ "$MODE" = profile ]; then
  # One instance for every case; a one-entry token cache makes case 5's tokens misses while
  # case 4's single token stays cached.
  gateway_conf "$P_GW" "$P_ADM" 1 >"$WORK/gw.toml"
  P_GW5=$P_GW                                      # case 5's URL names this instance too
  mkdir -p "$OUT/profile"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/profile/callgrind.out" \
    target/profiling/authgate -c "$WORK/gw.toml" 2>"$OUT/authgate-a.log" & pids+=($!); GW_PID=$!
  READY_TRIES=600
else
  BIN=target/release/authgate
  [ "$MODE" = perf ] && BIN=target/profiling/authgate
  gateway_conf "$P_GW" "$P_ADM" 100000 >"$WORK/gw.toml"
  gateway_conf "$P_GW5" "$P_ADM5" 1 >"$WORK/gw5.toml"
  on_server "$BIN" -c "$WORK/gw.toml" 2>"$OUT/authgate-a.log" & pids+=($!); GW_PID=$!
  on_server "$BIN" -c "$WORK/gw5.toml" 2>"$OUT/authgate-b.log" & pids+=($!); GW5_PID=$!
  if [ -n "$WITH_C" ]; then
    gateway_conf "$P_GWC" "$P_ADMC" 100000 "$VARIANT" "$VARIANT_HEADERS" >"$WORK/gwc.toml"
    on_server "$BIN" -c "$WORK/gwc.toml" 2>"$OUT/authgate-c.log" & pids+=($!); GWC_PID=$!
  fi
  READY_TRIES=100
fi
for p in "$P_ADM" $([ "$MODE" = profile ] || echo "$P_ADM5") ${GWC_PID:+"$P_ADMC"}; do
  for _ in $(seq 1 "$READY_TRIES"); do curl -sf "http://127.0.0.1:$p/readyz" >/dev/null && break; sleep 0.1; done
done
COOKIE=$(cd tests/support && node "$ROOT/benches/load/tokens.mjs" login "http://127.0.0.1:$P_GW" alice)
ONE=$(head -1 "$WORK/one.txt")

# What each case requests: its URL, and the one header it adds (none for cases 1 and 2). Case 5's
# token is the pool's n-th (n, the second argument, defaults to 1).
case_url() {
  case $1 in
    1) echo "http://127.0.0.1:$P_NGX/data" ;;
    2|7) echo "http://127.0.0.1:$P_GW/public/data" ;;
    3|4|6) echo "http://127.0.0.1:$P_GW/data" ;;
    5) echo "http://127.0.0.1:$P_GW5/data" ;;
    8) echo "http://127.0.0.1:$P_GWC/public/data" ;;
    9) echo "http://127.0.0.1:$P_GWC/data" ;;
  esac
}
case_header() {
  case $1 in
    3) echo "Cookie: $COOKIE" ;;
    4|7|9) echo "Authorization: Bearer $ONE" ;;
    5) echo "Authorization: Bearer $(sed -n "${2:-1}p" "$WORK/pool.txt")" ;;
    6) echo "Accept: text/html" ;;
  esac
}

# --- measurement ------------------------------------------------------------------------------
if [ "$MODE" = profile ]; then
  # REQUESTS requests of one case over one keep-alive connection (one curl process).
  send() { # case, count
    local c=$1 n=$2 url header i
    url=$(case_url "$c"); header=$(case_header "$c")
    {
      for i in $(seq 1 "$n"); do
        [ "$i" = 1 ] || echo next                  # curl options accumulate across URLs otherwise
        echo "url = \"$url\""
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\\n"'          # per URL: --next resets it
        [ "$c" != 5 ] || header=$(case_header 5 $((i % POOL + 1)))
        [ -z "$header" ] || echo "header = \"$header\""
      done
    } >"$WORK/curl-$c.cfg"
    curl -s --config "$WORK/curl-$c.cfg" | sort | uniq -c | sed "s/^/  case $c answers: /" >&2
  }
  echo "case,instructions,requests,instructions_per_request" >"$OUT/profile/per-case.csv"
  for c in 2 3 4 5 6 7; do
    send "$c" 50                                   # warm-up, not counted
    callgrind_control -z "$GW_PID" >/dev/null
    send "$c" "$REQUESTS"
    callgrind_control -d "case$c" "$GW_PID" >/dev/null
    sleep 1
    dump=$(ls -t "$OUT"/profile/callgrind.out* | head -1)
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}')
    echo "$c,$ir,$REQUESTS,$((ir / REQUESTS))" | tee -a "$OUT/profile/per-case.csv"
    callgrind_annotate --inclusive=yes "$dump" >"$OUT/profile/case$c-annotate.txt" 2>/dev/null || true
  done
  exit 0
fi

# CPU ticks (user + system) of the process family.
cpu_ticks() {
  local total=0 p
  for p in $(family "$1"); do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$total"
}
rss_kb() {
  local total=0 p
  for p in $(family "$1"); do total=$((total + $(awk '/^VmRSS/{print $2}' "/proc/$p/status"))); done
  echo "$total"
}

case_pid() { case $1 in 1) echo "$NGX_PID" ;; 5) echo "$GW5_PID" ;; 8|9) echo "$GWC_PID" ;; *) echo "$GW_PID" ;; esac; }

run_case() { # case, round, duration
  local c=$1 url pid args=() before after line
  url=$(case_url "$c"); pid=$(case_pid "$c")
  # Case 5's token comes from pool.lua, a different one on every request.
  local header; header=$(case_header "$c")
  [ "$c" = 5 ] || [ -z "$header" ] || args=(-H "$header")
  local script=plain.lua
  [ "$c" = 5 ] && script=pool.lua
  before=$(cpu_ticks "$pid")
  line=$(BENCH_DIR="$ROOT/benches/load" TOKEN_POOL="$WORK/pool.txt" \
    on_client wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3"s --timeout 5s -s "$ROOT/benches/load/$script" "${args[@]}" "$url" | grep '^{')
  after=$(cpu_ticks "$pid")
  echo "{\"case\":$c,\"round\":$2,\"cpu_ticks\":$((after - before)),\"rss_kb\":$(rss_kb "$pid"),${line#\{}"
}

# Sanity: each case answers as it should before anything is measured.
check() { # case, expected status
  local header args=() got
  header=$(case_header "$1" 2); [ -z "$header" ] || args=(-H "$header")
  got=$(curl -s -o /dev/null -w '%{http_code}' "${args[@]}" "$(case_url "$1")")
  [ "$got" = "$2" ] || { echo "case $1 answered $got, not $2" >&2; exit 1; }
}
for c in 1 2 3 4 5 7 ${GWC_PID:+8 9}; do check "$c" 200; done
check 6 302

if [ "$MODE" = perf ]; then
  # One sampled run per authgate case named in CASES, after a warm-up; wrk as in the load runs.
  mkdir -p "$OUT/perf"
  PERF_HZ=2999
  for c in $(tr ' ' '\n' <<<"$CASES" | grep -vx 1 | sort -un); do
    run_case "$c" 0 2 >/dev/null
    # The server's CPU, system-wide (attaching to a pid gives no samples in some VMs), then the
    # gateway's worker threads' samples (shares of all samples on that CPU).
    perf record -q -a -C "$SERVER_CPU" -e cpu-clock -F "$PERF_HZ" -o "$OUT/perf/case$c.data" -- sleep "$DURATION" 2>/dev/null &
    perf_pid=$!
    run_case "$c" 1 "$DURATION" >>"$OUT/results.jsonl"
    wait "$perf_pid" || true
    report=(perf report -q -i "$OUT/perf/case$c.data" --stdio --percent-limit 0.3)
    { "${report[@]}" --sort comm,dso 2>/dev/null || true; } | grep 'authgate proxy' >"$OUT/perf/case$c-dso.txt" || true
    { "${report[@]}" --sort comm,dso,sym 2>/dev/null || true; } | grep 'authgate proxy' >"$OUT/perf/case$c-top.txt" || true
    echo "case $c: $(awk '{printf "%s %s; ", $1, $NF}' "$OUT/perf/case$c-dso.txt")"
  done
  # The same samples in ns per request, by crate: comparable between cases, unlike shares.
  python3 "$ROOT/benches/load/perf_by_crate.py" "$OUT" "$PERF_HZ" \
    $(tr ' ' '\n' <<<"$CASES" | grep -vx 1 | sort -un) | tee "$OUT/perf/by-crate.md"
  exit 0
fi
echo "warm-up..."
# Each case that runs, once.
for c in $(tr ' ' '\n' <<<"$CASES" | sort -un); do run_case "$c" 0 2 >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    run_case "$c" "$r" "$DURATION" | tee -a "$OUT/results.jsonl"
  done
done
curl -s "http://127.0.0.1:$P_UP/nginx_status" | awk 'NR == 3 { print $1 " connections accepted, " $3 " requests served" }' >"$OUT/upstream.txt"
curl -s "http://127.0.0.1:$P_ADM5/metrics" | grep -E '^authgate_token_cache_(hits|misses)_total' >"$OUT/case5-cache.txt"
for p in "$GW_PID" "$GW5_PID" $GWC_PID; do grep -h VmHWM $(family "$p" | sed 's#.*#/proc/&/status#') | sort -k2 -n | tail -1; done >"$OUT/peak-rss.txt"

python3 "$ROOT/benches/load/summarize.py" "$OUT/results.jsonl" "$(getconf CLK_TCK)" "$OUT/case5-cache.txt" "$OUT/peak-rss.txt" \
  "wrk threads=$THREADS connections=$CONNECTIONS duration=${DURATION}s rounds=$ROUNDS; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; authgate threads=${GW_THREADS:-1}${GWC_PID:+, authgate C adds: $VARIANT $VARIANT_HEADERS}, nginx worker_processes=1" | tee "$OUT/summary.md"
echo "Upstream (all proxies together, warm-up included): $(cat "$OUT/upstream.txt")" | tee -a "$OUT/summary.md"
