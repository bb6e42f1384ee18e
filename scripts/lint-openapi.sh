#!/bin/sh
# Lints api/openapi.yaml with Redocly CLI's recommended ruleset (OpenAPI 3.1).
# The version is pinned: 2.77.0 is the last one known to run on Node 20
# (research/tooling.md). Exits non-zero on any error-level finding.
set -eu
cd "$(dirname "$0")/.."
REDOCLY_VERSION=2.77.0
# No telemetry, no update check: the linter should only read the file.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec npx --yes "@redocly/cli@${REDOCLY_VERSION}" lint --extends=recommended api/openapi.yaml "$@"
