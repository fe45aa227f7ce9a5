#!/usr/bin/env bash
# Validate the deployment kit in deploy/ offline: no cluster, no Docker engine, no Grafana.
#
#   scripts/validate-deploy.sh
#
# Idempotent. The first run installs pinned tools under target/ (package registries only):
#   target/deploy-venv    python venv: kubernetes-validate (offline Kubernetes JSON schemas), PyYAML
#   target/deploy-tools   libhelm_sdkpy.so from the PyPI wheel helm-sdkpy (the Helm v4 Go library,
#                         sha256-checked) and promtool from Debian's prometheus package
# Later runs reuse them. A tool that cannot be had is reported as "skip", never silently passed.
#
# What is checked (each line printed is one check):
#   Dockerfile          stages, base images, non-root USER, EXPOSE, ENTRYPOINT/CMD, the build
#                       command, the .dockerignore, and the exact HEALTHCHECK command run against
#                       a local HTTP server (200, 404, down) and against the real authgate binary
#                       when one is built (target/{release,debug}/authgate, or $AUTHGATE_BIN)
#   kubernetes/         every object against the Kubernetes OpenAPI schemas of pinned versions
#                       (strict: unknown fields fail); the ServiceMonitor CRD against a schema
#                       written here; cross-references (selectors, ports, volumes, probes,
#                       security context); gateway.toml parsed and run through `authgate --test`;
#                       kustomization resources; prometheus-scrape.yaml parsed, its relabeling
#                       simulated on the Deployment's pod, and checked by promtool
#   helm/authgate       Chart.yaml/values.yaml/templates; rendered with the real Helm engine for
#                       several value sets (installed into a fake in-memory API server on
#                       loopback), each rendering validated like the raw manifests; bad values
#                       must fail; parity with the raw manifests
#   grafana/            JSON, datasource/job/instance variables, layout, every query's metric
#                       names (and every authgate metric covered), PromQL syntax via promtool
#   prometheus/         rule structure, metric names, promtool check rules, promtool test rules
#   systemd/            required directives; systemd-analyze verify and security (offline)
#
# Exit status 0 when every check passed; the last line is "deploy-kit: N passed, M failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/target/deploy-venv"
TOOLS="$ROOT/target/deploy-tools"

# ---- pins ------------------------------------------------------------------------------------
# kubernetes-validate and its whole dependency closure, so the venv is reproducible.
PY_REQUIREMENTS="kubernetes-validate==1.37.0
PyYAML==6.0.3
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
referencing==0.37.0
rpds-py==2026.9.1
attrs==26.1.0
importlib_resources==7.1.0
packaging==26.3
typing_extensions==4.16.0"
# Kubernetes versions whose schemas (shipped inside kubernetes-validate) every manifest must pass.
K8S_VERSIONS="1.29.0 1.37.0"
# Helm engine: the Helm v4 Go library inside this PyPI wheel (linux-amd64). Only its shared
# library is used (through ctypes); the wheel's Python wrapper (Python >= 3.12) is not imported.
HELM_SDKPY_VERSION="0.1.32"
HELM_SDKPY_SHA256="bcf5bf73cacc373bebedfb9c988969aa12a9eda86a140deba658fbf28eb789c5"
# promtool from Debian bookworm's prometheus package (extracted, not installed). Debian builds
# it without Kubernetes service discovery: see the prometheus-scrape.yaml check.
PROMETHEUS_DEB_VERSION="2.42.0+ds-5+deb12u1"

log() { printf '%s\n' "$*" >&2; }

# ---- python venv -----------------------------------------------------------------------------
setup_venv() {
    local stamp="$VENV/.requirements"
    if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$PY_REQUIREMENTS" ]]; then
        return 0
    fi
    log "setting up $VENV (pinned: kubernetes-validate, PyYAML)"
    python3 -m venv "$VENV"
    printf '%s\n' "$PY_REQUIREMENTS" > "$VENV/requirements.txt"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$VENV/requirements.txt"
    printf '%s' "$PY_REQUIREMENTS" > "$stamp"
}

# ---- Helm engine -----------------------------------------------------------------------------
HELM_LIB=""
HELM_SKIP_REASON=""
setup_helm() {
    local dir="$TOOLS/helm-sdkpy-$HELM_SDKPY_VERSION"
    local lib="$dir/libhelm_sdkpy.so"
    if [[ -f "$lib" ]]; then HELM_LIB="$lib"; return 0; fi
    if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
        HELM_SKIP_REASON="helm-sdkpy ships linux-amd64 only"; return 0
    fi
    log "fetching helm-sdkpy==$HELM_SDKPY_VERSION (Helm v4 library) from PyPI"
    local dl; dl="$(mktemp -d)"
    if ! "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --ignore-requires-python --only-binary=:all: -d "$dl" \
            "helm-sdkpy==$HELM_SDKPY_VERSION" >&2; then
        rm -rf "$dl"; HELM_SKIP_REASON="pip could not download helm-sdkpy==$HELM_SDKPY_VERSION"; return 0
    fi
    local whl; whl="$(ls "$dl"/helm_sdkpy-*.whl)"
    if [[ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$HELM_SDKPY_SHA256" ]]; then
        rm -rf "$dl"; HELM_SKIP_REASON="helm-sdkpy wheel sha256 mismatch"; return 0
    fi
    mkdir -p "$dir"
    "$VENV/bin/python" - "$whl" "$dir" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so")
    lic = z.read("helm_sdkpy-0.1.32.dist-info/licenses/LICENSE")
open(sys.argv[2] + "/libhelm_sdkpy.so.part", "wb").write(data)
open(sys.argv[2] + "/LICENSE", "wb").write(lic)
PY
    mv "$dir/libhelm_sdkpy.so.part" "$lib"
    rm -rf "$dl"
    HELM_LIB="$lib"
}

# ---- promtool --------------------------------------------------------------------------------
PROMTOOL=""
PROMTOOL_SKIP_REASON=""
setup_promtool() {
    local dir="$TOOLS/prometheus-deb"
    if [[ -x "$dir/usr/bin/promtool" ]]; then PROMTOOL="$dir/usr/bin/promtool"; return 0; fi
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        PROMTOOL_SKIP_REASON="no apt-get/dpkg-deb to fetch Debian's prometheus package"; return 0
    fi
    log "fetching Debian package prometheus=$PROMETHEUS_DEB_VERSION (for promtool)"
    local dl; dl="$(mktemp -d)"; chmod 0777 "$dl"
    local got=""
    if (cd "$dl" && apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1); then
        got="$PROMETHEUS_DEB_VERSION"
    else
        # The package lists may be missing (fresh machine) or the pinned build replaced by a
        # point release: refresh the lists once, then take the pinned version or the candidate.
        if [[ $EUID -eq 0 ]]; then apt-get update -qq >/dev/null 2>&1 || true; fi
        if (cd "$dl" && apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1); then
            got="$PROMETHEUS_DEB_VERSION"
        elif (cd "$dl" && apt-get download -q prometheus >/dev/null 2>&1); then
            got="$(dpkg-deb -f "$dl"/prometheus_*.deb Version)"
            log "note: prometheus=$PROMETHEUS_DEB_VERSION is no longer in the archive; using $got"
        fi
    fi
    if [[ -z "$got" ]]; then
        rm -rf "$dl"; PROMTOOL_SKIP_REASON="apt-get could not download the prometheus package"; return 0
    fi
    rm -rf "$dir.part"; mkdir -p "$dir.part"
    dpkg-deb -x "$dl"/prometheus_*.deb "$dir.part"
    # Keep promtool (a static Go binary) and the licence; drop the server and its web assets.
    mkdir -p "$dir.keep/usr/bin"
    mv "$dir.part/usr/bin/promtool" "$dir.keep/usr/bin/promtool"
    cp "$dir.part/usr/share/doc/prometheus/copyright" "$dir.keep/copyright" 2>/dev/null || true
    rm -rf "$dir" "$dir.part"; mv "$dir.keep" "$dir"; rm -rf "$dl"
    PROMTOOL="$dir/usr/bin/promtool"
}

mkdir -p "$TOOLS"
setup_venv
setup_helm
setup_promtool

# The authgate binary, if one was built (this script never builds it): $AUTHGATE_BIN, else the
# newer of target/release/authgate and target/debug/authgate.
AUTHGATE_BIN="${AUTHGATE_BIN:-}"
if [[ -z "$AUTHGATE_BIN" ]]; then
    for candidate in "$ROOT/target/release/authgate" "$ROOT/target/debug/authgate"; do
        if [[ -x "$candidate" && ( -z "$AUTHGATE_BIN" || "$candidate" -nt "$AUTHGATE_BIN" ) ]]; then
            AUTHGATE_BIN="$candidate"
        fi
    done
fi

export ROOT K8S_VERSIONS HELM_LIB HELM_SKIP_REASON PROMTOOL PROMTOOL_SKIP_REASON AUTHGATE_BIN
SYSTEMD_ANALYZE="$(command -v systemd-analyze || true)"
export SYSTEMD_ANALYZE

exec "$VENV/bin/python" - <<'PY'
import copy, ctypes, fnmatch, glob, json, os, re, shutil, signal, socket, subprocess
import sys, tempfile, threading, time, tomllib, traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.environ["ROOT"]
DEPLOY = os.path.join(ROOT, "deploy")
K8S_VERSIONS = os.environ["K8S_VERSIONS"].split()
HELM_LIB = os.environ.get("HELM_LIB", "")
PROMTOOL = os.environ.get("PROMTOOL", "")
AUTHGATE_BIN = os.environ.get("AUTHGATE_BIN", "")
SYSTEMD_ANALYZE = os.environ.get("SYSTEMD_ANALYZE", "")

# Every metric authgate exports (src/metrics.rs). Dashboards and alerts may use only these,
# plus `up`, which Prometheus itself records for every scrape target.
AUTHGATE_COUNTERS_GAUGES = {
    "authgate_requests_total", "authgate_auth_decisions_total",
    "authgate_token_cache_hits_total", "authgate_token_cache_misses_total",
    "authgate_sessions", "authgate_sessions_created_total", "authgate_sessions_ended_total",
    "authgate_logins_total", "authgate_idp_requests_total", "authgate_jwks_refresh_total",
    "authgate_jwks_keys", "authgate_backchannel_logouts_total",
    "authgate_logout_webhook_deliveries_total", "authgate_upstream_errors_total",
    "authgate_config_reloads_total", "authgate_build_info",
}
AUTHGATE_HISTOGRAMS = {
    "authgate_request_duration_seconds", "authgate_auth_duration_seconds",
    "authgate_idp_request_duration_seconds",
}
AUTHGATE_METRICS = AUTHGATE_COUNTERS_GAUGES | AUTHGATE_HISTOGRAMS
PROMETHEUS_SYNTHETIC = {"up"}
KNOWN_SERIES = (AUTHGATE_COUNTERS_GAUGES | PROMETHEUS_SYNTHETIC |
                {h + s for h in AUTHGATE_HISTOGRAMS for s in ("_bucket", "_sum", "_count")})

passed, failed, skipped = 0, [], []


def ok(name):
    global passed
    passed += 1
    print(f"ok    {name}")


def fail(name, detail):
    failed.append(name)
    print(f"FAIL  {name}: {detail}")


def skip(name, reason):
    skipped.append(name)
    print(f"skip  {name}: {reason}")


def check(name, cond, detail="check failed"):
    if cond:
        ok(name)
    else:
        fail(name, detail)
    return bool(cond)


def section(title):
    print(f"\n== {title}")


def rel(path):
    return os.path.relpath(path, ROOT)


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path, timeout=3):
    """(status, body) of a plain HTTP/1.1 GET on loopback."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# PromQL: the metric names an expression reads.
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                   "unless", "bool", "offset", "inf", "nan", "atan2"}


def promql_metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)                                                   # matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                                                  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def grafana_expr_to_promql(expr):
    """Replace Grafana's variables with values Prometheus can parse."""
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", e)


def promtool_check_exprs(name, exprs):
    """promtool parses each expression (as recording rules)."""
    if not PROMTOOL:
        skip(name, os.environ.get("PROMTOOL_SKIP_REASON") or "promtool not available")
        return
    with tempfile.TemporaryDirectory() as d:
        rules = {"groups": [{"name": "exprs", "rules": [
            {"record": f"authgate:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
        p = os.path.join(d, "exprs.yaml")
        with open(p, "w") as f:
            yaml.safe_dump(rules, f)
        r = subprocess.run([PROMTOOL, "check", "rules", p], capture_output=True, text=True)
        check(name, r.returncode == 0, (r.stdout + r.stderr).strip()[-2000:])


# ---------------------------------------------------------------------------------------------
def sec_metric_list():
    """metric list"""
    section("metric list")
    metrics_rs = os.path.join(ROOT, "src", "metrics.rs")
    if os.path.exists(metrics_rs):
        src = open(metrics_rs).read()
        defined = set(re.findall(r'"(authgate_[a-z_]+)"', src))
        check("every metric used by the kit is defined in src/metrics.rs",
              AUTHGATE_METRICS <= defined, f"not in src/metrics.rs: {sorted(AUTHGATE_METRICS - defined)}")
        extra = defined - AUTHGATE_METRICS
        if extra:
            print(f"note  src/metrics.rs defines metrics the kit does not use yet: {sorted(extra)}")
    else:
        skip("metric list matches src/metrics.rs", "src/metrics.rs not found")


# ---------------------------------------------------------------------------------------------
def sec_dockerfile():
    """Dockerfile"""
    section("Dockerfile")
    dockerfile = os.path.join(DEPLOY, "Dockerfile")
    text = open(dockerfile).read()
    logical = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in logical.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        kw, _, rest = s.partition(" ")
        instructions.append((kw.upper(), rest.strip()))
    args = {}
    for kw, rest in instructions:
        if kw == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k.strip()] = v.strip()
    froms = [rest for kw, rest in instructions if kw == "FROM"]


    def expand(s):
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)


    check("Dockerfile: two stages (FROM x2)", len(froms) == 2, f"FROM lines: {froms}")
    if len(froms) == 2:
        check("Dockerfile: builder is rust:1-bookworm",
              expand(froms[0]).split()[0] == "rust:1-bookworm", expand(froms[0]))
        check("Dockerfile: runtime is debian:bookworm-slim",
              expand(froms[1]).split()[0] == "debian:bookworm-slim", expand(froms[1]))
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    check("Dockerfile: builder installs cmake and pkg-config",
          re.search(r"apt-get install[^&]*\bcmake\b", runs) and re.search(r"apt-get install[^&]*\bpkg-config\b", runs))
    check("Dockerfile: cargo build --release --locked", "cargo build --release --locked" in runs)
    check("Dockerfile: runtime installs ca-certificates and no curl/wget",
          "ca-certificates" in runs and not re.search(r"\b(curl|wget)\b", runs))
    copies = [rest for kw, rest in instructions if kw == "COPY"]
    check("Dockerfile: binary copied to /usr/local/bin/authgate",
          any(c.startswith("--from=") and c.endswith("/usr/local/bin/authgate") for c in copies), copies)
    users = [rest for kw, rest in instructions if kw == "USER"]
    check("Dockerfile: non-root USER 65532", users and users[-1].split(":")[0] == "65532", users)
    expose = " ".join(rest for kw, rest in instructions if kw == "EXPOSE").split()
    check("Dockerfile: EXPOSE 8080 9090", {"8080", "9090"} <= set(expose), expose)
    entry = [rest for kw, rest in instructions if kw == "ENTRYPOINT"]
    cmd = [rest for kw, rest in instructions if kw == "CMD"]
    check("Dockerfile: ENTRYPOINT [\"/usr/local/bin/authgate\"]",
          entry and json.loads(entry[-1]) == ["/usr/local/bin/authgate"], entry)
    check("Dockerfile: CMD -c /etc/authgate/gateway.toml",
          cmd and json.loads(cmd[-1]) == ["-c", "/etc/authgate/gateway.toml"], cmd)
    hc = [rest for kw, rest in instructions if kw == "HEALTHCHECK"]
    hc_argv = None
    if check("Dockerfile: one HEALTHCHECK", len(hc) == 1, hc):
        m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc[0])
        try:
            hc_argv = json.loads(m.group(1)) if m else None
        except ValueError:
            hc_argv = None
        # Docker silently falls back to shell form when the JSON is invalid: insist on valid JSON.
        check("Dockerfile: HEALTHCHECK CMD is valid exec-form JSON", isinstance(hc_argv, list), hc[0])
        env_port = re.search(r"^ENV\s+AUTHGATE_ADMIN_PORT=(\d+)", text, re.M)
        check("Dockerfile: ENV AUTHGATE_ADMIN_PORT=9090 (the HEALTHCHECK's port)",
              env_port and env_port.group(1) == "9090")

    ignore_file = os.path.join(DEPLOY, "Dockerfile.dockerignore")
    if check("Dockerfile.dockerignore exists beside the Dockerfile", os.path.exists(ignore_file)):
        patterns = [l.strip() for l in open(ignore_file) if l.strip() and not l.startswith("#")]

        def ignored(path):
            res = False
            for p in patterns:
                neg = p.startswith("!")
                pat = p[1:] if neg else p
                pat = pat.rstrip("/")
                hit = any(fnmatch.fnmatch(path, x) or path.startswith(x + "/")
                          for x in {pat, pat.replace("**/", "")})
                if pat.startswith("**/"):
                    hit = hit or any(fnmatch.fnmatch(part, pat[3:]) for part in path.split("/"))
                if hit:
                    res = not neg
            return res

        check("Dockerfile.dockerignore: excludes target/ and .git/",
              ignored("target/release/authgate") and ignored(".git/HEAD"))
        needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"] + \
            [rel(p) for p in glob.glob(os.path.join(ROOT, "benches", "*.rs"))]
        check("Dockerfile.dockerignore: keeps Cargo.toml, Cargo.lock, src/, benches/ (cargo needs them)",
              not any(ignored(p) for p in needed), [p for p in needed if ignored(p)])


    def run_healthcheck(port):
        env = dict(os.environ, AUTHGATE_ADMIN_PORT=str(port))
        try:
            return subprocess.run(hc_argv, env=env, capture_output=True, timeout=15).returncode
        except subprocess.TimeoutExpired:
            return "timeout"


    if hc_argv:
        # /healthz simulated by python's http.server serving a file named healthz.
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "healthz"), "w").write("ok\n")
            port = free_port()
            srv = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                    "127.0.0.1", "--directory", d],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(50):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                rc = run_healthcheck(port)
                check(f"HEALTHCHECK passes on 200 (http.server on 127.0.0.1:{port})", rc == 0, f"exit {rc}")
                os.remove(os.path.join(d, "healthz"))
                rc = run_healthcheck(port)
                check("HEALTHCHECK fails on 404", rc not in (0, "timeout"), f"exit {rc}")
            finally:
                srv.terminate()
                srv.wait(timeout=10)
            rc = run_healthcheck(port)
            check("HEALTHCHECK fails when nothing listens", rc not in (0, "timeout"), f"exit {rc}")

        # The same command against the real admin listener (pingora), when a binary exists.
        if AUTHGATE_BIN:
            with tempfile.TemporaryDirectory() as d:
                p_listen, p_admin, p_idp, p_up = free_port(), free_port(), free_port(), free_port()
                conf = os.path.join(d, "gateway.toml")
                open(conf, "w").write(f"""
    [server]
    listen = "127.0.0.1:{p_listen}"
    admin_listen = "127.0.0.1:{p_admin}"
    threads = 1
    pid_file = "{d}/authgate.pid"
    upgrade_sock = "{d}/upgrade.sock"
    grace_period = "1s"
    [upstream]
    url = "http://127.0.0.1:{p_up}"
    [oidc]
    issuer = "http://127.0.0.1:{p_idp}"
    client_id = "validate-deploy"
    client_secret = "${{AUTHGATE_CLIENT_SECRET}}"
    redirect_url = "http://127.0.0.1:{p_listen}/oauth2/callback"
    [session]
    cookie_secure = false
    """)
                env = dict(os.environ, AUTHGATE_CLIENT_SECRET="validate-deploy-secret")
                proc = subprocess.Popen([AUTHGATE_BIN, "-c", conf], env=env,
                                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
                try:
                    up = False
                    for _ in range(100):
                        if proc.poll() is not None:
                            break
                        try:
                            socket.create_connection(("127.0.0.1", p_admin), timeout=0.2).close()
                            up = True
                            break
                        except OSError:
                            time.sleep(0.1)
                    if check(f"authgate ({rel(AUTHGATE_BIN)}) starts with a test config", up,
                             open(os.path.join(d, "log")).read()[-1000:]):
                        rc = run_healthcheck(p_admin)
                        check("HEALTHCHECK passes against authgate's /healthz", rc == 0, f"exit {rc}")
                        status, body = http_get(p_admin, "/readyz")
                        try:
                            ready = json.loads(body).get("ready")
                        except ValueError:
                            ready = None
                        check("authgate /readyz is 503 {\"ready\": false} while the provider is down "
                              "(what the readiness probe relies on)", status == 503 and ready is False,
                              f"{status} {body[:200]}")
                        status, body = http_get(p_admin, "/metrics")
                        families = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", body))
                        gauges = {"authgate_sessions", "authgate_jwks_keys", "authgate_build_info"}
                        want = {m: ("histogram" if m in AUTHGATE_HISTOGRAMS else "gauge" if m in gauges else "counter")
                                for m in AUTHGATE_METRICS}
                        wrong = {f: t for f, t in families.items() if want.get(f) != t}
                        check("authgate /metrics: every family it exports is in the kit's list, with its type",
                              status == 200 and "authgate_build_info" in families and not wrong,
                              f"{status}; unknown or mistyped: {wrong}")
                finally:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                        try:
                            proc.wait(timeout=15)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
        else:
            skip("HEALTHCHECK against the real authgate", "no target/release/authgate (this script does not build)")


# ---------------------------------------------------------------------------------------------
# Kubernetes objects
SERVICEMONITOR_SCHEMA = {
    # Written for this kit from the monitoring.coreos.com/v1 API: the fields it uses, strictly.
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object", "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "selector": {"type": "object", "additionalProperties": False, "properties": {
                    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "matchExpressions": {"type": "array"}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "targetPort": {"type": ["string", "integer"]},
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                        "scrapeTimeout": {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array"},
                        "metricRelabelings": {"type": "array"},
                    }}},
            },
        },
    },
}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICEMONITOR_SCHEMA}


def validate_objects(label, objects):
    """Schema-validate each object: Kubernetes kinds against every pinned version (strict), CRDs
    against the schemas above; an unknown kind fails."""
    for obj in objects:
        kind, api = obj.get("kind"), obj.get("apiVersion")
        name = f"{label}: {kind}/{(obj.get('metadata') or {}).get('name')}"
        if (api, kind) in CRD_SCHEMAS:
            errs = sorted(jsonschema.Draft7Validator(CRD_SCHEMAS[(api, kind)]).iter_errors(obj), key=str)
            check(f"{name} matches the kit's {kind} schema (CRD: no upstream schema offline)",
                  not errs, "; ".join(f"{list(e.path)}: {e.message}" for e in errs[:5]))
            continue
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, v, strict=True)
                ok(f"{name} valid against Kubernetes {v} (strict)")
            except kubernetes_validate.SchemaNotFoundError:
                fail(f"{name} valid against Kubernetes {v}", f"no schema for {api} {kind}")
            except kubernetes_validate.ValidationError as e:
                fail(f"{name} valid against Kubernetes {v} (strict)", f"{list(e.path)}: {e.message}")


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def authgate_test(label, toml_text, expect_ok=True):
    """Run the config through `authgate --test`: exit 0 with AUTHGATE_CLIENT_SECRET set, and 64
    without it (proving the secret really comes from the environment)."""
    if not AUTHGATE_BIN:
        skip(f"{label}: authgate --test", "no target/release/authgate (this script does not build)")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml_text)
        path = f.name
    try:
        env = {k: v for k, v in os.environ.items() if k != "AUTHGATE_CLIENT_SECRET"}
        r = subprocess.run([AUTHGATE_BIN, "-c", path, "--test"], capture_output=True, text=True,
                           timeout=30, env=dict(env, AUTHGATE_CLIENT_SECRET="validate-deploy-secret"))
        check(f"{label}: `authgate --test` accepts gateway.toml", r.returncode == 0,
              f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[-800:]}")
        r = subprocess.run([AUTHGATE_BIN, "-c", path, "--test"], capture_output=True, text=True,
                           timeout=30, env=env)
        check(f"{label}: `authgate --test` exits 64 without AUTHGATE_CLIENT_SECRET",
              r.returncode == 64 and "AUTHGATE_CLIENT_SECRET" in r.stdout + r.stderr,
              f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[-300:]}")
    finally:
        os.unlink(path)


def check_gateway_toml(label, toml_text, upstream=None, run_test=True):
    try:
        conf = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{label}: gateway.toml is valid TOML", str(e))
        return None
    ok(f"{label}: gateway.toml is valid TOML")
    srv = conf.get("server", {})
    check(f"{label}: listen 0.0.0.0:8080, admin_listen 0.0.0.0:9090",
          srv.get("listen") == "0.0.0.0:8080" and srv.get("admin_listen") == "0.0.0.0:9090",
          f"{srv.get('listen')} {srv.get('admin_listen')}")
    check(f"{label}: pid_file and upgrade_sock under /tmp (the emptyDir)",
          str(srv.get("pid_file", "/tmp/")).startswith("/tmp/")
          and str(srv.get("upgrade_sock", "/tmp/")).startswith("/tmp/"))
    check(f"{label}: log_format json", srv.get("log_format") == "json", srv.get("log_format"))
    check(f"{label}: client_secret from ${{AUTHGATE_CLIENT_SECRET}}",
          conf.get("oidc", {}).get("client_secret") == "${AUTHGATE_CLIENT_SECRET}")
    if upstream:
        check(f"{label}: upstream {upstream}", conf.get("upstream", {}).get("url") == upstream,
              conf.get("upstream", {}).get("url"))
    if run_test:
        authgate_test(label, toml_text)
    return conf


def check_pod_wiring(label, objects, sidecar=True, admin_port=9090, external_secrets=()):
    """Cross-references between the objects of one deployment."""
    deps = by_kind(objects, "Deployment")
    if not check(f"{label}: one Deployment", len(deps) == 1, len(deps)):
        return
    dep = deps[0]
    spec = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
    check(f"{label}: Deployment selector matches its pod labels",
          matches(dep["spec"]["selector"].get("matchLabels"), pod_labels))
    containers = {c["name"]: c for c in spec["containers"]}
    ag = containers.get("authgate")
    if not check(f"{label}: authgate container present", ag is not None, list(containers)):
        return
    ports = {p["name"]: p["containerPort"] for p in ag.get("ports", [])}
    check(f"{label}: authgate ports http 8080 and admin {admin_port}",
          ports.get("http") == 8080 and ports.get("admin") == admin_port, ports)
    others = [c for n, c in containers.items() if n != "authgate"]
    if sidecar:
        check(f"{label}: app container exposes no port", others and all(not c.get("ports") for c in others),
              [c.get("ports") for c in others])
        app_text = json.dumps(others)
        check(f"{label}: app container is configured to bind 127.0.0.1", "127.0.0.1" in app_text)
    else:
        check(f"{label}: standalone pod runs authgate only", not others, [c["name"] for c in others])
    sc = ag.get("securityContext", {})
    pod_sc = spec.get("securityContext", {})
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    check(f"{label}: authgate securityContext (non-root 65532, read-only root, no escalation, drop ALL, RuntimeDefault)",
          sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532
          and sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
          and sc.get("capabilities", {}).get("drop") == ["ALL"] and seccomp == "RuntimeDefault", sc)
    res = ag.get("resources", {})
    check(f"{label}: authgate resources requests and limits",
          {"cpu", "memory"} <= set(res.get("requests", {})) and "memory" in res.get("limits", {}), res)
    lp, rp = ag.get("livenessProbe", {}), ag.get("readinessProbe", {})
    check(f"{label}: liveness GET /healthz and readiness GET /readyz on the admin port",
          lp.get("httpGet", {}).get("path") == "/healthz" and rp.get("httpGet", {}).get("path") == "/readyz"
          and lp["httpGet"].get("port") in ("admin", admin_port) and rp["httpGet"].get("port") in ("admin", admin_port),
          (lp, rp))
    check(f"{label}: authgate runs -c /etc/authgate/gateway.toml",
          (ag.get("command") or []) + (ag.get("args") or []) in (["-c", "/etc/authgate/gateway.toml"],
                                                               ["/usr/local/bin/authgate", "-c", "/etc/authgate/gateway.toml"]),
          ag.get("args"))
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in ag.get("volumeMounts", [])}
    cfg_mount = mounts.get("/etc/authgate")
    cfg_vol = volumes.get(cfg_mount["name"]) if cfg_mount else None
    cms = {c["metadata"]["name"]: c for c in by_kind(objects, "ConfigMap")}
    check(f"{label}: ConfigMap with gateway.toml mounted at /etc/authgate",
          cfg_vol and "configMap" in cfg_vol and cfg_vol["configMap"]["name"] in cms
          and "gateway.toml" in cms[cfg_vol["configMap"]["name"]].get("data", {}), cfg_mount)
    tmp_mount = mounts.get("/tmp")
    check(f"{label}: /tmp is an emptyDir (read-only root filesystem)",
          tmp_mount and "emptyDir" in volumes.get(tmp_mount["name"], {}), tmp_mount)
    secrets = {s["metadata"]["name"] for s in by_kind(objects, "Secret")}
    refs = [e["secretRef"]["name"] for e in ag.get("envFrom", []) if "secretRef" in e]
    refs += [e["valueFrom"]["secretKeyRef"]["name"] for e in ag.get("env", [])
             if "secretKeyRef" in e.get("valueFrom", {})]
    secret_env = [e for e in ag.get("env", []) if e.get("name") == "AUTHGATE_CLIENT_SECRET"]
    check(f"{label}: AUTHGATE_CLIENT_SECRET comes from a Secret of this kit or a named existing one",
          refs and (secret_env or ag.get("envFrom"))
          and all(r in secrets or r in external_secrets for r in refs), refs)
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in ann:
        check(f"{label}: prometheus.io/port is the admin port", ann["prometheus.io/port"] == str(admin_port), ann)
    services = by_kind(objects, "Service")
    port_names = set(ports)
    for svc in services:
        sname = svc["metadata"]["name"]
        check(f"{label}: Service {sname} selects the pods", matches(svc["spec"].get("selector"), pod_labels))
        check(f"{label}: Service {sname} targets named container ports",
              all(p.get("targetPort") in port_names for p in svc["spec"]["ports"]), svc["spec"]["ports"])
    main = [s for s in services if any(p.get("targetPort") == "http" for p in s["spec"]["ports"])]
    check(f"{label}: the user-facing Service has port 80 -> http and no admin port",
          len(main) == 1 and [(p["port"], p["targetPort"]) for p in main[0]["spec"]["ports"]] == [(80, "http")],
          [s["spec"]["ports"] for s in main])
    for sm in by_kind(objects, "ServiceMonitor"):
        sel = sm["spec"]["selector"].get("matchLabels", {})
        targets = [s for s in services if matches(sel, s["metadata"].get("labels", {}))]
        check(f"{label}: ServiceMonitor selects exactly the metrics Service",
              len(targets) == 1 and {p["name"] for p in targets[0]["spec"]["ports"]} == {"admin"},
              [t["metadata"]["name"] for t in targets])
        eps = sm["spec"]["endpoints"]
        check(f"{label}: ServiceMonitor scrapes port admin /metrics every 30s",
              [(e.get("port"), e.get("path"), e.get("interval")) for e in eps] == [("admin", "/metrics", "30s")], eps)
    return dep


# ---------------------------------------------------------------------------------------------
def sec_kubernetes():
    """kubernetes/"""
    global raw_objects, raw_dep, raw_cm
    section("kubernetes/ (raw manifests, sidecar)")
    K8S_DIR = os.path.join(DEPLOY, "kubernetes")
    NOT_OBJECTS = {"kustomization.yaml", "prometheus-scrape.yaml"}
    raw_objects = []
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        if os.path.basename(path) in NOT_OBJECTS:
            continue
        try:
            docs = load_yaml_docs(path)
        except yaml.YAMLError as e:
            fail(f"{rel(path)} parses", str(e))
            continue
        check(f"{rel(path)} parses ({len(docs)} object(s))", docs and all(isinstance(d, dict) for d in docs))
        validate_objects(rel(path), docs)
        raw_objects += docs

    raw_dep = check_pod_wiring("kubernetes", raw_objects, sidecar=True)
    raw_cm = {c["metadata"]["name"]: c for c in by_kind(raw_objects, "ConfigMap")}
    for name, cm in raw_cm.items():
        check_gateway_toml(f"kubernetes ConfigMap {name}", cm["data"]["gateway.toml"], upstream="http://127.0.0.1:3000")
    raw_secrets = by_kind(raw_objects, "Secret")
    check("kubernetes: Secret is Opaque with stringData.AUTHGATE_CLIENT_SECRET",
          len(raw_secrets) == 1 and raw_secrets[0].get("type") == "Opaque"
          and "AUTHGATE_CLIENT_SECRET" in raw_secrets[0].get("stringData", {}))

    kust_path = os.path.join(K8S_DIR, "kustomization.yaml")
    kust = yaml.safe_load(open(kust_path))
    resources = kust.get("resources", [])
    check("kubernetes/kustomization.yaml: kustomize.config.k8s.io/v1beta1 Kustomization",
          kust.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and kust.get("kind") == "Kustomization")
    check("kubernetes/kustomization.yaml: every resource exists",
          all(os.path.exists(os.path.join(K8S_DIR, r)) for r in resources), resources)
    # secret.yaml stays out on purpose: `kubectl apply -k` must never replace a real Secret with
    # its placeholder.
    expected = sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S_DIR, "*.yaml"))
                      if os.path.basename(p) not in NOT_OBJECTS | {"secret.yaml"})
    check("kubernetes/kustomization.yaml: lists every manifest but secret.yaml and prometheus-scrape.yaml",
          sorted(resources) == expected, f"{sorted(resources)} vs {expected}")
    readme = os.path.join(K8S_DIR, "README.md")
    check("kubernetes/README.md exists", os.path.exists(readme) and "kubectl apply -k" in open(readme).read())

    # prometheus-scrape.yaml: a prometheus.yml snippet, not a Kubernetes object.
    scrape_path = os.path.join(K8S_DIR, "prometheus-scrape.yaml")
    scrape = yaml.safe_load(open(scrape_path))
    jobs = scrape.get("scrape_configs") if isinstance(scrape, dict) else None
    if check("kubernetes/prometheus-scrape.yaml parses with a scrape_configs list",
             isinstance(jobs, list) and jobs and all("job_name" in j for j in jobs)):
        job = jobs[0]
        check("prometheus-scrape.yaml: kubernetes_sd_configs role pod",
              [c.get("role") for c in job.get("kubernetes_sd_configs", [])] == ["pod"])

        def relabel(labels, configs):
            labels = dict(labels)
            for c in configs:
                action = c.get("action", "replace")
                src = c.get("separator", ";").join(labels.get(l, "") for l in c.get("source_labels", []))
                rx = re.compile("^(?:" + c.get("regex", "(.*)") + ")$")
                m = rx.match(src)
                if action == "keep" and not m:
                    return None
                if action == "drop" and m:
                    return None
                if action == "replace" and m:
                    repl = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", c.get("replacement", "$1"))
                    value = m.expand(repl)
                    if value:
                        labels[c["target_label"]] = value
                    else:
                        labels.pop(c["target_label"], None)
            return labels

        # Prometheus' pod discovery for the Deployment's pod: one target per container port, one
        # port-less target per container without ports.
        tpl = raw_dep["spec"]["template"] if raw_dep else {"metadata": {}, "spec": {"containers": []}}
        base = {"__meta_kubernetes_namespace": "default", "__meta_kubernetes_pod_name": "legacy-app-abc",
                "__meta_kubernetes_pod_phase": "Running", "__metrics_path__": job.get("metrics_path", "/metrics"),
                "__scheme__": "http"}
        for k, v in tpl["metadata"].get("annotations", {}).items():
            base["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
        for k, v in tpl["metadata"].get("labels", {}).items():
            base["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
        discovered = []
        for c in tpl["spec"]["containers"]:
            for p in c.get("ports") or [None]:
                t = dict(base, __meta_kubernetes_pod_container_name=c["name"])
                if p:
                    t.update(__address__=f"10.1.2.3:{p['containerPort']}",
                             __meta_kubernetes_pod_container_port_name=p.get("name", ""),
                             __meta_kubernetes_pod_container_port_number=str(p["containerPort"]))
                else:
                    t["__address__"] = "10.1.2.3"
                discovered.append(t)
        kept = [t for t in (relabel(t, job.get("relabel_configs", [])) for t in discovered) if t]
        check("prometheus-scrape.yaml: relabeling keeps exactly one target per pod: 10.1.2.3:9090/metrics",
              [(t["__address__"], t["__metrics_path__"]) for t in kept] == [("10.1.2.3:9090", "/metrics")],
              [(t["__address__"], t["__metrics_path__"]) for t in kept])
        check("prometheus-scrape.yaml: targets get namespace and pod labels",
              kept and kept[0].get("namespace") == "default" and kept[0].get("pod") == "legacy-app-abc")
        if PROMTOOL:
            # Debian's promtool is built without Kubernetes discovery: check everything else with the
            # discovery swapped for a static target.
            cfg = copy.deepcopy(scrape)
            for j in cfg["scrape_configs"]:
                j.pop("kubernetes_sd_configs", None)
                j["static_configs"] = [{"targets": ["127.0.0.1:9090"]}]
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "prometheus.yml")
                yaml.safe_dump(cfg, open(p, "w"))
                r = subprocess.run([PROMTOOL, "check", "config", p], capture_output=True, text=True)
                check("prometheus-scrape.yaml: promtool check config (kubernetes_sd_configs swapped for "
                      "static_configs: Debian's promtool lacks Kubernetes discovery)",
                      r.returncode == 0, (r.stdout + r.stderr).strip()[-1500:])
        else:
            skip("prometheus-scrape.yaml: promtool check config", os.environ.get("PROMTOOL_SKIP_REASON") or "no promtool")


# ---------------------------------------------------------------------------------------------
CHART = os.path.join(DEPLOY, "helm", "authgate")
raw_objects, raw_dep, raw_cm = [], None, {}


def sec_helm_static():
    """helm chart files"""
    section("helm/authgate (chart)")
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    check("Chart.yaml: apiVersion v2, name authgate, semver version, appVersion, type application",
          chart.get("apiVersion") == "v2" and chart.get("name") == "authgate"
          and re.match(r"^\d+\.\d+\.\d+", str(chart.get("version", ""))) and chart.get("appVersion")
          and chart.get("type", "application") == "application", chart)
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    check("values.yaml parses to a mapping", isinstance(values, dict))
    templates = ["_helpers.tpl", "configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml",
                 "servicemonitor.yaml", "NOTES.txt"]
    missing = [t for t in templates if not os.path.exists(os.path.join(CHART, "templates", t))]
    check("templates: every template file exists", not missing, missing)
    tpl_text = {os.path.basename(p): open(p).read() for p in glob.glob(os.path.join(CHART, "templates", "*"))}
    defined = set(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', tpl_text.get("_helpers.tpl", "")))
    used = set()
    for t in tpl_text.values():
        used |= set(re.findall(r'\binclude\s+"([^"]+)"', t))
    check("templates: every included named template is defined in _helpers.tpl", used <= defined, sorted(used - defined))
    actions = {n: (len(re.findall(r"\{\{-?\s*(?:if|range|with|define)\b", t)),
                   len(re.findall(r"\{\{-?\s*end\s*-?\}\}", t))) for n, t in tpl_text.items()}
    check("templates: if/range/with/define blocks balanced by end",
          all(a == b for a, b in actions.values()), {n: v for n, v in actions.items() if v[0] != v[1]})


    def values_path_exists(path):
        node = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True


    refs = set()
    for t in tpl_text.values():
        refs |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", t))
    bad_refs = sorted(r for r in refs if not values_path_exists(r.rstrip(".")))
    check("templates: every .Values path exists in values.yaml", not bad_refs, bad_refs)


class FakeKubeAPI(BaseHTTPRequestHandler):
    """Just enough Kubernetes API for `helm install`: discovery, 404 on reads, creates recorded."""
    resources = {
        ("", "v1"): [("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
                     ("services", "Service", True), ("namespaces", "Namespace", False),
                     ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True)],
        ("apps", "v1"): [("deployments", "Deployment", True)],
        ("monitoring.coreos.com", "v1"): [("servicemonitors", "ServiceMonitor", True)],
    }
    created = []

    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def resource_list(self, group, version):
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k,
                               "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                              for n, k, ns in self.resources[(group, version)]]}

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = []
            for g, v in self.resources:
                if g:
                    gv = {"groupVersion": f"{g}/{v}", "version": v}
                    groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/api/v1":
            return self.reply(200, self.resource_list("", "v1"))
        if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in self.resources:
            return self.reply(200, self.resource_list(parts[1], parts[2]))
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404, "message": "not found"})

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self):
        raw, ctype = self.body(), self.headers.get("Content-Type", "")
        if "protobuf" in ctype:  # Helm's release record (a Secret from the typed client)
            return self.reply(201, raw, ctype)
        obj = json.loads(raw)
        FakeKubeAPI.created.append(copy.deepcopy(obj))
        obj.setdefault("metadata", {}).update(uid="00000000-0000-0000-0000-000000000001", resourceVersion="1")
        self.reply(201, obj)

    def do_PUT(self):
        raw, ctype = self.body(), self.headers.get("Content-Type", "")
        if "protobuf" in ctype:
            return self.reply(200, raw, ctype)
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

    do_PATCH = do_PUT


class Helm:
    def __init__(self, lib_path):
        self.tmp = tempfile.mkdtemp(prefix="validate-deploy-helm-")
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeKubeAPI)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        kc = os.path.join(self.tmp, "kubeconfig")
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                   "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.srv.server_port}"}}],
                   "users": [{"name": "fake", "user": {"token": "fake"}}],
                   "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}]},
                  open(kc, "w"))
        for k, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
            os.environ[k] = os.path.join(self.tmp, sub)
        os.environ["KUBECONFIG"] = kc
        self.lib = ctypes.CDLL(lib_path)
        self.lib.helm_sdkpy_last_error.restype = ctypes.c_void_p
        self.handle = ctypes.c_ulonglong()
        if self.lib.helm_sdkpy_config_create(b"default", kc.encode(), b"", b"{}", ctypes.byref(self.handle)) != 0:
            raise RuntimeError("helm config: " + self.error())
        self.n = 0

    def error(self):
        p = self.lib.helm_sdkpy_last_error()
        return ctypes.string_at(p).decode() if p else "unknown error"

    def render(self, values):
        """(objects, notes) of `helm install` with these values, or raise RuntimeError."""
        self.n += 1
        FakeKubeAPI.created = []
        out = ctypes.c_void_p()
        opts = {"create_namespace": False, "wait": False, "timeout_seconds": 60, "wait_for_jobs": False,
                "server_side_apply": "false", "force_conflicts": False, "disable_openapi_validation": True,
                "skip_schema_validation": False, "rollback_on_failure": False, "take_ownership": False}
        rc = self.lib.helm_sdkpy_install(self.handle, f"demo{self.n}".encode(), CHART.encode(),
                                         json.dumps(values).encode() if values else b"", b"",
                                         json.dumps(opts).encode(), ctypes.byref(out))
        if rc != 0:
            raise RuntimeError(self.error())
        release = json.loads(ctypes.string_at(out.value).decode())
        manifest = [d for d in yaml.safe_load_all(release.get("manifest", "")) if d]
        return manifest, (release.get("info") or {}).get("notes", ""), FakeKubeAPI.created

    def lint(self):
        out = ctypes.c_void_p()
        if self.lib.helm_sdkpy_lint(self.handle, CHART.encode(), ctypes.byref(out)) != 0:
            raise RuntimeError(self.error())
        return json.loads(ctypes.string_at(out.value).decode())


def sec_helm_render():
    """helm rendering"""
    helm = None
    if HELM_LIB:
        try:
            helm = Helm(HELM_LIB)
        except Exception as e:  # noqa: BLE001
            fail("Helm engine loads", str(e))
    else:
        print(f"helm not available: skipping chart rendering ({os.environ.get('HELM_SKIP_REASON') or 'no helm'})")
        skip("helm chart rendering", "helm not available")

    if helm:
        ok("Helm engine loads (helm-sdkpy libhelm_sdkpy.so, Helm v4)")
        lint = helm.lint()
        check("helm lint: no errors", not lint.get("Errors"), lint)

        scenarios = [
            ("defaults (sidecar)", {}, dict(sidecar=True, kinds={"ConfigMap": 1, "Secret": 1, "Service": 2, "Deployment": 1},
                                            upstream="http://127.0.0.1:3000", run_test=True)),
            ("sidecar, existingSecret, ServiceMonitor, TLS, 2 replicas, extraEnv",
             {"replicaCount": 2, "clientSecret": {"existingSecret": "my-oidc", "key": "client-secret"},
              "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
              "server": {"tls": {"enabled": True, "secretName": "legacy-app-tls"}},
              "extraEnv": [{"name": "AUTHGATE_LOG", "value": "authgate=debug,info"}],
              "oidc": {"settings": {"use_userinfo": True}},
              "app": {"port": 4000, "args": ["--listen", "127.0.0.1:4000"]}},
             dict(sidecar=True, kinds={"ConfigMap": 1, "Service": 2, "Deployment": 1, "ServiceMonitor": 1},
                  upstream="http://127.0.0.1:4000", run_test=False, external_secrets={"my-oidc"})),
            ("standalone", {"mode": "standalone", "replicaCount": 2,
                            "upstream": {"url": "http://legacy-app.default.svc.cluster.local:3000"},
                            "service": {"sessionAffinity": "ClientIP"}, "metrics": {"service": {"enabled": False}}},
             dict(sidecar=False, kinds={"ConfigMap": 1, "Secret": 1, "Service": 1, "Deployment": 1},
                  upstream="http://legacy-app.default.svc.cluster.local:3000", run_test=False)),
        ]
        rendered = {}
        for label, vals, exp in scenarios:
            name = f"helm [{label}]"
            try:
                objects, notes, created = helm.render(vals)
            except RuntimeError as e:
                fail(f"{name} renders", str(e)[-1500:])
                continue
            ok(f"{name} renders ({len(objects)} objects)")
            rendered[label] = objects
            check(f"{name}: the fake API server received the same objects",
                  len(created) == len(objects), f"{len(created)} vs {len(objects)}")
            kinds = {}
            for o in objects:
                kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
            check(f"{name}: objects {exp['kinds']}", kinds == exp["kinds"], kinds)
            validate_objects(name, objects)
            check_pod_wiring(name, objects, sidecar=exp["sidecar"], external_secrets=exp.get("external_secrets", ()))
            for cm in by_kind(objects, "ConfigMap"):
                toml_text = cm["data"]["gateway.toml"]
                check_gateway_toml(name, toml_text, upstream=exp["upstream"], run_test=exp["run_test"])
                if not exp["run_test"]:
                    # What cannot exist offline is substituted, and the substitution is named.
                    with tempfile.TemporaryDirectory() as tmpd:
                        text, notes_ = toml_text, []
                        if "/etc/authgate-tls/" in text:
                            crt, key = os.path.join(tmpd, "tls.crt"), os.path.join(tmpd, "tls.key")
                            r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                                "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
                                                "/CN=localhost", "-keyout", key, "-out", crt],
                                               capture_output=True) if shutil.which("openssl") else None
                            if not r or r.returncode != 0:
                                skip(f"{name}: authgate --test", "openssl not available for a test TLS key pair")
                                continue
                            text = text.replace("/etc/authgate-tls/tls.crt", crt).replace("/etc/authgate-tls/tls.key", key)
                            notes_.append("TLS files = a throwaway self-signed pair")
                        if not exp["sidecar"]:
                            text = text.replace(exp["upstream"], "http://127.0.0.1:3000")
                            notes_.append("upstream host = 127.0.0.1: it is resolved at load")
                        authgate_test(f"{name} ({'; '.join(notes_)})", text)
            check(f"{name}: NOTES.txt rendered", "readyz" in notes, notes[:200])
            if label.startswith("sidecar, existingSecret"):
                dep = by_kind(objects, "Deployment")[0]
                ag = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "authgate"][0]
                ref = [e for e in ag["env"] if e["name"] == "AUTHGATE_CLIENT_SECRET"][0]["valueFrom"]["secretKeyRef"]
                check(f"{name}: existingSecret used, no Secret created",
                      ref == {"name": "my-oidc", "key": "client-secret"} and not by_kind(objects, "Secret"), ref)
                toml = tomllib.loads(by_kind(objects, "ConfigMap")[0]["data"]["gateway.toml"])
                check(f"{name}: [server.tls] rendered and the TLS Secret mounted",
                      toml["server"].get("tls", {}).get("cert_file") == "/etc/authgate-tls/tls.crt"
                      and any(v.get("secret", {}).get("secretName") == "legacy-app-tls"
                              for v in dep["spec"]["template"]["spec"]["volumes"]))
                check(f"{name}: oidc.settings rendered into [oidc]", toml["oidc"].get("use_userinfo") is True)
                check(f"{name}: NOTES warns about in-memory sessions with 2 replicas", "sticky" in notes)
                sm = by_kind(objects, "ServiceMonitor")[0]
                check(f"{name}: ServiceMonitor carries serviceMonitor.labels",
                      sm["metadata"]["labels"].get("release") == "kube-prometheus-stack")

        bad = [
            ("standalone without upstream.url", {"mode": "standalone"}, "upstream.url is required"),
            ("unknown mode", {"mode": "daemonset"}, "mode must be sidecar or standalone"),
            ("ServiceMonitor without the metrics Service",
             {"serviceMonitor": {"enabled": True}, "metrics": {"service": {"enabled": False}}},
             "serviceMonitor.enabled needs metrics.service.enabled"),
            ("TLS without a Secret name", {"server": {"tls": {"enabled": True}}}, "server.tls.secretName is required"),
            ("no client secret at all", {"clientSecret": {"value": ""}}, "clientSecret.value or clientSecret.existingSecret"),
        ]
        for label, vals, msg in bad:
            try:
                helm.render(vals)
                fail(f"helm [{label}] is refused", "rendered without error")
            except RuntimeError as e:
                check(f"helm [{label}] is refused with a clear message", msg in str(e), str(e)[-300:])

        # The chart's defaults and the raw manifests configure authgate's container alike.
        if "defaults (sidecar)" in rendered and raw_dep:
            def authgate_container(dep):
                return [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "authgate"][0]
            h = authgate_container(by_kind(rendered["defaults (sidecar)"], "Deployment")[0])
            r = authgate_container(raw_dep)
            for field in ("securityContext", "livenessProbe", "readinessProbe", "resources", "ports", "lifecycle", "args"):
                check(f"helm defaults = kubernetes/deployment.yaml: authgate {field}", h.get(field) == r.get(field),
                      f"{h.get(field)} != {r.get(field)}")
            hconf = tomllib.loads(by_kind(rendered["defaults (sidecar)"], "ConfigMap")[0]["data"]["gateway.toml"])
            rconf = tomllib.loads(list(raw_cm.values())[0]["data"]["gateway.toml"])
            for table in ("server", "upstream"):
                same = {k: v for k, v in rconf[table].items() if hconf[table].get(k) != v}
                check(f"helm defaults = kubernetes/configmap.yaml: [{table}] settings", not same, same)


# ---------------------------------------------------------------------------------------------
def sec_grafana():
    """grafana dashboard"""
    section("grafana/authgate-dashboard.json")
    dash_path = os.path.join(DEPLOY, "grafana", "authgate-dashboard.json")
    try:
        dash = json.load(open(dash_path))
        ok("dashboard JSON parses")
    except ValueError as e:
        dash = None
        fail("dashboard JSON parses", str(e))
    if dash:
        check("dashboard: title, uid, schemaVersion >= 36",
              dash.get("title") and dash.get("uid") and dash.get("schemaVersion", 0) >= 36)
        tvars = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
        check("dashboard: datasource variable DS_PROMETHEUS (type datasource, prometheus)",
              tvars.get("DS_PROMETHEUS", {}).get("type") == "datasource"
              and tvars["DS_PROMETHEUS"].get("query") == "prometheus")
        check("dashboard: job and instance query variables on authgate metrics",
              all(tvars.get(n, {}).get("type") == "query" and "authgate_" in json.dumps(tvars[n].get("query"))
                  for n in ("job", "instance")))
        panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
        ids = [p.get("id") for p in dash.get("panels", [])]
        check("dashboard: unique panel ids", len(ids) == len(set(ids)))
        check("dashboard: every panel uses ${DS_PROMETHEUS}",
              all(p.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}"
                  and all(t.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}" for t in p.get("targets", []))
                  for p in panels))
        check("dashboard: every panel has a query", all(p.get("targets") for p in panels),
              [p.get("title") for p in panels if not p.get("targets")])
        cells, overlap = set(), []
        for p in dash.get("panels", []):
            g = p["gridPos"]
            if g["x"] + g["w"] > 24:
                overlap.append(p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for yy in range(g["y"], g["y"] + g["h"]):
                    if (x, yy) in cells:
                        overlap.append(p["title"])
                    cells.add((x, yy))
        check("dashboard: panels fit 24 columns without overlapping", not overlap, sorted(set(overlap)))
        exprs = [t["expr"] for p in panels for t in p["targets"]]
        used = set()
        unknown = {}
        for p in panels:
            for t in p["targets"]:
                names = promql_metric_names(grafana_expr_to_promql(t["expr"]))
                used |= names
                bad = names - KNOWN_SERIES
                if bad:
                    unknown[p["title"]] = sorted(bad)
                if not names:
                    unknown[p["title"]] = ["<no metric>"]
        check(f"dashboard: {len(exprs)} queries use only authgate's metric names", not unknown, unknown)
        base_used = {re.sub(r"_(bucket|sum|count)$", "", n) if re.sub(r"_(bucket|sum|count)$", "", n) in AUTHGATE_HISTOGRAMS else n
                     for n in used}
        check("dashboard: every authgate metric has a panel", AUTHGATE_METRICS <= base_used,
              sorted(AUTHGATE_METRICS - base_used))
        for v in ("job", "instance"):
            q = tvars.get(v, {}).get("definition", "")
            check(f"dashboard: ${v} variable reads known metrics",
                  promql_metric_names(re.sub(r"label_values\((.*),\s*\w+\)", r"\1", q).replace("$job", ".*")) <= KNOWN_SERIES, q)
        promtool_check_exprs("dashboard: every query is valid PromQL (promtool, Grafana variables substituted)",
                             [grafana_expr_to_promql(e) for e in exprs])


# ---------------------------------------------------------------------------------------------
def sec_alerts():
    """alert rules"""
    section("prometheus/authgate-alerts.yaml")
    alerts_path = os.path.join(DEPLOY, "prometheus", "authgate-alerts.yaml")
    try:
        rules_doc = yaml.safe_load(open(alerts_path))
        ok("alert rules YAML parses")
    except yaml.YAMLError as e:
        rules_doc = None
        fail("alert rules YAML parses", str(e))
    if rules_doc:
        groups = rules_doc.get("groups") or []
        check("alert rules: groups with names and rules", groups and all(g.get("name") and g.get("rules") for g in groups))
        all_rules = [r for g in groups for r in g.get("rules", [])]
        bad_shape = [r.get("alert") for r in all_rules
                     if not (r.get("alert") and r.get("expr") and "for" in r
                             and r.get("labels", {}).get("severity") in ("critical", "warning", "info")
                             and {"summary", "description", "runbook"} <= set(r.get("annotations", {})))]
        check(f"alert rules: all {len(all_rules)} have alert, expr, for, labels.severity, annotations summary/description/runbook",
              not bad_shape, bad_shape)
        names = [r["alert"] for r in all_rules if r.get("alert")]
        check("alert rules: unique alert names", len(names) == len(set(names)))
        unknown = {r["alert"]: sorted(promql_metric_names(r["expr"]) - KNOWN_SERIES) for r in all_rules
                   if promql_metric_names(r["expr"]) - KNOWN_SERIES}
        check("alert rules: only known metric names", not unknown, unknown)
        required = {"AuthgateHighErrorRate", "AuthgateUpstreamErrors", "AuthgateIdPErrors", "AuthgateJWKSRefreshFailing",
                    "AuthgateProviderKeysNotLoaded", "AuthgateTargetDown", "AuthgateLoginFailuresSpike",
                    "AuthgateLogoutWebhookFailing"}
        check("alert rules: error rate, upstream, IdP, JWKS, readiness, target, login, webhook alerts present",
              required <= set(names), sorted(required - set(names)))
        if PROMTOOL:
            r = subprocess.run([PROMTOOL, "check", "rules", alerts_path], capture_output=True, text=True)
            check("alert rules: promtool check rules", r.returncode == 0, (r.stdout + r.stderr).strip()[-1500:])
            test_path = os.path.join(DEPLOY, "prometheus", "authgate-alerts.test.yaml")
            r = subprocess.run([PROMTOOL, "test", "rules", os.path.basename(test_path)], capture_output=True,
                               text=True, cwd=os.path.dirname(test_path))
            check("alert rules: promtool test rules (authgate-alerts.test.yaml)", r.returncode == 0,
                  (r.stdout + r.stderr).strip()[-3000:])
            tested = set(re.findall(r"alertname:\s*(\w+)", open(test_path).read()))
            check("alert rules: every alert has a unit test", set(names) <= tested, sorted(set(names) - tested))
        else:
            skip("alert rules: promtool", os.environ.get("PROMTOOL_SKIP_REASON") or "no promtool")


# ---------------------------------------------------------------------------------------------
def sec_systemd():
    """systemd unit"""
    section("systemd/authgate.service")
    unit_path = os.path.join(DEPLOY, "systemd", "authgate.service")
    unit_text = open(unit_path).read()
    directives = {}
    sect = None
    for line in unit_text.splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("["):
            sect = s.strip("[]")
            continue
        k, _, v = s.partition("=")
        directives.setdefault((sect, k.strip()), []).append(v.strip())


    def d(key, section_="Service"):
        return directives.get((section_, key), [])


    required = {
        "Type": "simple",
        "ExecStartPre": "/usr/local/bin/authgate -c /etc/authgate/gateway.toml --test",
        "ExecStart": "/usr/local/bin/authgate -c /etc/authgate/gateway.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "EnvironmentFile": "-/etc/authgate/authgate.env",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RuntimeDirectory": "authgate",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
        "LimitNOFILE": "65536",
    }
    for k, v in required.items():
        check(f"unit: {k}={v}", d(k)[-1:] == [v], d(k))
    check("unit: runs as a non-root user (User= or DynamicUser=yes)",
          (d("User") and d("User")[-1] not in ("root", "0")) or d("DynamicUser")[-1:] == ["yes"])
    check("unit: AmbientCapabilities grants nothing by default", d("AmbientCapabilities")[-1:] in ([], [""]))
    check("unit: [Install] WantedBy=multi-user.target", d("WantedBy", "Install") == ["multi-user.target"])
    check("unit: comments point pid_file/upgrade_sock at /run/authgate/",
          "/run/authgate/" in unit_text and "pid_file" in unit_text and "upgrade_sock" in unit_text)

    if SYSTEMD_ANALYZE:
        with tempfile.TemporaryDirectory() as tmpd:
            stub = os.path.join(tmpd, "authgate")
            open(stub, "w").write("#!/bin/sh\nexit 0\n")
            os.chmod(stub, 0o755)
            probe = os.path.join(tmpd, "probe.service")
            open(probe, "w").write(f"[Service]\nType=simple\nExecStart={stub}\n")
            r = subprocess.run([SYSTEMD_ANALYZE, "verify", probe], capture_output=True, text=True)
            if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
                skip("unit: systemd-analyze verify", f"systemd-analyze does not work here: {(r.stdout + r.stderr).strip()[:200]}")
            else:
                # A copy with the binary path pointing at a stub: the real binary is not installed.
                copy_path = os.path.join(tmpd, "authgate.service")
                open(copy_path, "w").write(unit_text.replace("/usr/local/bin/authgate", stub))
                r = subprocess.run([SYSTEMD_ANALYZE, "verify", copy_path], capture_output=True, text=True)
                out = (r.stdout + r.stderr).strip()
                check("unit: systemd-analyze verify (binary path swapped for a stub): no warnings",
                      r.returncode == 0 and not out, out[-1500:])
                r = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", "--no-pager",
                                    copy_path], capture_output=True, text=True)
                score = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
                check(f"unit: systemd-analyze security exposure <= 2.0 (got {score.group(1) if score else '?'})",
                      r.returncode == 0 and score, (r.stdout + r.stderr).strip()[-800:])
    else:
        skip("unit: systemd-analyze", "systemd-analyze not installed")


# ---------------------------------------------------------------------------------------------
for sec in (sec_metric_list, sec_dockerfile, sec_kubernetes, sec_helm_static, sec_helm_render, sec_grafana, sec_alerts, sec_systemd):
    try:
        sec()
    except Exception:  # noqa: BLE001 - a malformed file must fail a check, not stop the run
        fail(f"{sec.__doc__}: the validator could not finish this section", traceback.format_exc()[-1500:])

print()
if skipped:
    print(f"skipped {len(skipped)}: " + "; ".join(skipped))
if failed:
    print(f"FAILED {len(failed)}: " + "; ".join(failed))
    print(f"deploy-kit: {passed} passed, {len(failed)} failed")
    sys.exit(1)
print(f"deploy-kit: {passed} passed, 0 failed")
PY
