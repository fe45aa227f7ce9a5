#!/usr/bin/env bash
# Install what building and testing authgate needs and a fresh machine lacks.
# Idempotent: installs only what is missing. Debian packages via apt-get (update once),
# npm packages pinned in tests/support/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A NEED=(
  [cmake]=cmake          # pingora's libz-ng-sys and aws-lc-sys build with it
  [pkg-config]=pkg-config
  [nginx]=nginx          # forward-auth tests run a real nginx with auth_request
  [chromium]=chromium    # the browser test drives Debian's Chromium with playwright-core
)
# nginx is in /usr/sbin, which is not on a non-root user's PATH on Debian.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin:/sbin" ;; esac
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# scripts/validate-deploy.sh makes a virtualenv for its pinned Python packages.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3 python3-venv)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in cargo node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required" >&2; exit 1; }
done

if [ ! -d tests/support/node_modules/oidc-provider ] || [ tests/support/package-lock.json -nt tests/support/node_modules/.package-lock.json ]; then
  (cd tests/support && npm ci --no-audit --no-fund --loglevel=error)
fi
