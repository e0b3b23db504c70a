#!/usr/bin/env bash
# `npm run demo`: installs what is missing, then syncs a throwaway OpenLDAP directory into
# PostgreSQL through a real scheduler and worker talking over Redis, and prints each run's report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
. "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
mkdir -p .tmp
# The demo keeps its data in its own database and queue prefix so it never touches a real setup.
export DATABASE_URL="${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dirsync_demo}"
export DIRSYNC_QUEUE_PREFIX="${DEMO_QUEUE_PREFIX:-dirsync-demo}"
# The demo's directories run on this machine: loopback is allowed for them explicitly.
export DIRSYNC_ALLOWED_NETWORKS="${DIRSYNC_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
if [ -z "${DIRSYNC_SECRET_KEY:-}" ]; then
  # A key of the demo's own, kept between runs so earlier demo rows stay readable.
  [ -s .tmp/demo-secret-key ] || ./bin/dirsync secrets generate-key > .tmp/demo-secret-key
  DIRSYNC_SECRET_KEY="$(cat .tmp/demo-secret-key)"
  export DIRSYNC_SECRET_KEY
fi
exec ./bin/dirsync demo "$@"
