#!/usr/bin/env bash
# `npm test`: installs what is missing, then runs every test of every package in one jest run
# against the real servers. The JSON report lands in .tmp/jest-results.json for .ci/run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
. "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
mkdir -p .tmp
rm -f .tmp/jest-results.json
NODE_OPTIONS="--experimental-vm-modules --no-warnings=ExperimentalWarning" \
  pnpm exec jest --config jest.config.js --json --outputFile=.tmp/jest-results.json "$@"
