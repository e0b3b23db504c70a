#!/usr/bin/env bash
# `npm run bench` / `pnpm bench`: the throughput benchmark. Prints a table and writes
# bench/results/<date>.json and bench/results/latest.json. Extra arguments go to the benchmark
# (for example `--objects 1000000`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
. "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
# The benchmark's directories run on this machine: loopback is allowed for them explicitly.
export DIRSYNC_ALLOWED_NETWORKS="${DIRSYNC_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
exec ./bin/dirsync bench "$@"
