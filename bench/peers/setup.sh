#!/bin/sh
# Installs what `npm run bench:peers` needs on a bare Debian machine, only when
# missing: uWSGI's core with the python3 plugin, and redis-server. bullmq comes
# from package.json's devDependencies (npm ci). Needs root for apt-get.
set -eu

missing=""
command -v uwsgi >/dev/null 2>&1 || missing="$missing uwsgi-core"
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || missing="$missing uwsgi-plugin-python3"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"

if [ -n "$missing" ]; then
  echo "bench:peers setup: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq $missing >/dev/null
  # Debian starts a system-wide redis on port 6379 after install; the harness
  # runs its own on a random port and never uses this one, so stop it again.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
  fi
fi

if [ ! -d node_modules/bullmq ]; then
  echo "bench:peers setup: bullmq missing from node_modules; running npm ci" >&2
  npm ci
fi
