#!/usr/bin/env bash
# Removes what scripts/install.sh installed: the service and the program. The state (job queue, outbox, deployed
# models) and the config stay unless --purge, which also removes the system user.
set -euo pipefail

PREFIX=/opt/edgetune
STATE_DIR=/var/lib/edgetune
CONFIG_DIR=/etc/edgetune
UNIT_DIR=/etc/systemd/system
SERVICE_USER=edgetune
PURGE=0

usage() {
  echo "usage: $0 [--prefix DIR] [--state-dir DIR] [--config-dir DIR] [--unit-dir DIR] [--user NAME] [--purge]"
}
die() { echo "uninstall.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --config-dir) CONFIG_DIR=$2; shift 2 ;;
    --unit-dir) UNIT_DIR=$2; shift 2 ;;
    --user) SERVICE_USER=$2; shift 2 ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
# Refuse to delete something that is clearly not an edgetune install.
[ -f "$PREFIX/dist/src/agent/daemon.js" ] || [ ! -e "$PREFIX" ] || die "$PREFIX does not look like an edgetune install (no dist/src/agent/daemon.js); not touching it"

unit="$UNIT_DIR/edgetune-agent.service"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now edgetune-agent.service 2>/dev/null || true
fi
rm -f "$unit"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
rm -rf "$PREFIX"
echo "== removed the service and $PREFIX"

if [ "$PURGE" = 1 ]; then
  rm -rf "$STATE_DIR" "$CONFIG_DIR"
  if id -u "$SERVICE_USER" >/dev/null 2>&1 && [ "$SERVICE_USER" != root ]; then userdel "$SERVICE_USER" 2>/dev/null || true; fi
  echo "== purged $STATE_DIR, $CONFIG_DIR and user $SERVICE_USER"
else
  echo "== kept $STATE_DIR (models, queued jobs, unsent results) and $CONFIG_DIR; --purge removes them"
fi
