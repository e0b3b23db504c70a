#!/usr/bin/env bash
# `npm run demo`: installs what is missing, then syncs a throwaway OpenLDAP directory into
# PostgreSQL through a real scheduler and worker talking over Redis, and prints each run's report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
. "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
mkdir -p .tmp
# The PostgreSQL server the demo uses: each run makes a database (dirsync_demo_<run>) and a queue
# prefix (dirsync-demo-<run>) of its own there and drops them when it ends, so it never touches
# a real setup, nor another demo running at the same time.
export DATABASE_URL="${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dirsync_demo}"
# The demo's directories run on this machine: loopback is allowed for them explicitly.
export DIRSYNC_ALLOWED_NETWORKS="${DIRSYNC_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
if [ -z "${DIRSYNC_SECRET_KEY:-}" ]; then
  # A key of the demo's own (its runs' data is dropped with their databases; the key is kept).
  [ -s .tmp/demo-secret-key ] || ./bin/dirsync secrets generate-key > .tmp/demo-secret-key
  DIRSYNC_SECRET_KEY="$(cat .tmp/demo-secret-key)"
  export DIRSYNC_SECRET_KEY
fi
exec ./bin/dirsync demo "$@"
