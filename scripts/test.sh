#!/usr/bin/env bash
# Run every test: unit tests, and end-to-end tests against the real authgate binary, a real
# OpenID provider (oidc-provider), an echo upstream and the other real parts they need.
# Installs whatever is missing first. This is the command CI runs (.ci/run). Extra arguments
# go to cargo test (and then the deployment-kit validation is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
# The tests start nginx by name; Debian puts it in /usr/sbin, off a non-root user's PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin:/sbin" ;; esac
scripts/install-deps.sh
cargo test --locked "$@"
# The deployment kit (Kubernetes manifests, Helm chart, dashboard, alerts, systemd unit),
# validated offline against pinned schemas; uses the authgate binary the tests just built.
if [ "$#" -eq 0 ]; then
  scripts/validate-deploy.sh
fi
