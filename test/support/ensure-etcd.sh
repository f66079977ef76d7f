#!/usr/bin/env bash
# Make sure the etcd integration tests have an etcd binary (run by `npm test` before the suite).
# Uses $ETCD_BIN or `etcd` on PATH; otherwise installs Debian's etcd-server when that is
# possible without asking (root + apt-get), and otherwise says exactly what to do.
set -euo pipefail
if [ -n "${ETCD_BIN:-}" ] && [ -x "$ETCD_BIN" ]; then exit 0; fi
if command -v etcd >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "test setup: etcd not found; installing Debian's etcd-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  command -v etcd >/dev/null 2>&1 && exit 0
fi
echo "test setup: the etcd integration tests need an etcd 3.4+ binary." >&2
echo "  Install it (Debian/Ubuntu: sudo apt-get install etcd-server) or set ETCD_BIN=/path/to/etcd." >&2
exit 1
