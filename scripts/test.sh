#!/usr/bin/env bash
# Run every test: unit tests, and end-to-end tests against the real authgate binary, a real
# OpenID provider (oidc-provider), an echo upstream and the other real parts they need.
# Installs whatever is missing first. This is the command CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --locked "$@"
