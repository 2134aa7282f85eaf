#!/usr/bin/env bash
# Installs the edgetune agent as a hardened systemd service:
#   checks Node.js (>= 20), builds the JavaScript, installs it under a prefix with its production dependencies,
#   creates a system user and its state folder, writes /etc/edgetune/config.json (if absent) and the unit
#   edgetune-agent.service, then enables and starts it.
# Run from a checkout: sudo scripts/install.sh [options]. Undo with scripts/uninstall.sh.
set -euo pipefail

PREFIX=/opt/edgetune
STATE_DIR=/var/lib/edgetune
CONFIG_DIR=/etc/edgetune
UNIT_DIR=/etc/systemd/system
SERVICE_USER=edgetune
NODE_BIN=""
BROKER_URL=""
DEPS=npm            # npm: npm ci --omit=dev in the prefix | copy: copy this checkout's node_modules | link: symlink it (development)
CREATE_USER=1
START=1
DRY_RUN=0

usage() {
  cat <<EOF
usage: $0 [options]
  --prefix DIR        where the program goes (default $PREFIX)
  --state-dir DIR     the agent's state: job queue, outbox, models (default $STATE_DIR)
  --config-dir DIR    where config.json lives (default $CONFIG_DIR)
  --unit-dir DIR      where the systemd unit is written (default $UNIT_DIR)
  --user NAME         system user the agent runs as (default $SERVICE_USER)
  --node PATH         the node binary (default: the one on PATH)
  --broker URL        broker.url for a new config.json, e.g. mqtts://broker.lan:8883
  --deps MODE         npm | copy | link  (default npm: npm ci --omit=dev in the prefix)
  --no-user           do not create the user (it must exist, or run as root for tests)
  --no-start          write everything but do not enable or start the service
  --dry-run           print the unit file and exit
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "== $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --config-dir) CONFIG_DIR=$2; shift 2 ;;
    --unit-dir) UNIT_DIR=$2; shift 2 ;;
    --user) SERVICE_USER=$2; shift 2 ;;
    --node) NODE_BIN=$2; shift 2 ;;
    --broker) BROKER_URL=$2; shift 2 ;;
    --deps) DEPS=$2; shift 2 ;;
    --no-user) CREATE_USER=0; shift ;;
    --no-start) START=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
case "$DEPS" in npm|copy|link) ;; *) die "--deps must be npm, copy or link (got $DEPS)" ;; esac
for d in "$PREFIX" "$STATE_DIR" "$CONFIG_DIR" "$UNIT_DIR"; do
  case "$d" in /*) ;; *) die "paths must be absolute: $d" ;; esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
NODE_BIN=${NODE_BIN:-$(command -v node || true)}
[ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] || die "Node.js not found; install Node.js 20 or newer (https://nodejs.org or your distribution's nodejs package)"
NODE_VERSION=$("$NODE_BIN" -p 'process.versions.node')
[ "${NODE_VERSION%%.*}" -ge 20 ] || die "Node.js $NODE_VERSION at $NODE_BIN is too old; edgetune needs 20 or newer"

unit() {
  cat <<EOF
# edgetune-agent.service: written by scripts/install.sh (edit the config, not this file: $CONFIG_DIR/config.json)
[Unit]
Description=edgetune device agent (on-device ONNX model tuning, reporting over MQTT)
Documentation=file://$PREFIX/docs/agent.md
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
WorkingDirectory=$STATE_DIR
Environment=NODE_ENV=production
Environment=EDGETUNE_CONFIG=$CONFIG_DIR/config.json
Environment=EDGETUNE_STATE_DIR=$STATE_DIR
# JSON lines on stdout go to the journal: journalctl -u edgetune-agent -o cat
# daemon.js is \`edgetune agent\` without the rest of the CLI loaded; --lite-mode and a small young generation keep
# the idle agent near 50 MB (work processes run with the full compiler: see src/agent/work/worker.ts).
ExecStart=$NODE_BIN --lite-mode --no-expose-wasm --max-semi-space-size=1 $PREFIX/dist/src/agent/daemon.js
Restart=on-failure
RestartSec=5
# SIGTERM to the agent only: it interrupts the running job (it resumes at the next start), publishes offline
# and exits; whatever is left after the timeout (work processes) gets SIGKILL.
KillMode=mixed
TimeoutStopSec=30

# Hardening. The agent needs: its state folder (read-write), the network, /proc and /sys (read: profiling,
# health), /dev for accelerators (Jetson GPU, Raspberry Pi vcgencmd), and writable+executable memory for V8's
# JIT and ONNX Runtime, so MemoryDenyWriteExecute and PrivateDevices are deliberately not set.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$STATE_DIR
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0027

[Install]
WantedBy=multi-user.target
EOF
}

# TypeScript → JavaScript, file by file, same tree: esbuild (which tsx ships) takes a second; tsc is the fallback
# (it writes JavaScript even when a type check elsewhere in the tree fails: what matters is the output).
build_js() {
  local out=$1 esbuild="$SRC/node_modules/esbuild/bin/esbuild"
  if [ -x "$esbuild" ]; then
    (cd "$SRC" && "$esbuild" $(find src -name '*.ts') --outdir="$out/src" --outbase=src --format=esm --platform=node --target=node20 --log-level=warning)
  else
    (cd "$SRC" && "$NODE_BIN" node_modules/typescript/bin/tsc -p tsconfig.json --outDir "$out" >/dev/null 2>&1) || true
  fi
  [ -f "$out/src/agent/daemon.js" ] && [ -f "$out/src/cli/main.js" ] && [ -f "$out/src/agent/work/worker-child.js" ] \
    || die "build failed (is this a checkout with node_modules? run npm ci first)"
}

if [ "$DRY_RUN" = 1 ]; then unit; exit 0; fi

say "building (Node.js $NODE_VERSION)"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
build_js "$BUILD"


say "installing to $PREFIX"
mkdir -p "$PREFIX"
rm -rf "$PREFIX/dist" "$PREFIX/config" "$PREFIX/targets" "$PREFIX/examples" "$PREFIX/docs"
mkdir -p "$PREFIX/dist"
cp -R "$BUILD/src" "$PREFIX/dist/src"
cp "$SRC/package.json" "$SRC/package-lock.json" "$PREFIX/"
for d in config targets examples docs; do [ -d "$SRC/$d" ] && cp -R "$SRC/$d" "$PREFIX/$d"; done
case "$DEPS" in
  npm) (cd "$PREFIX" && npm ci --omit=dev --no-audit --no-fund) ;;
  copy) rm -rf "$PREFIX/node_modules"; cp -R "$SRC/node_modules" "$PREFIX/node_modules" ;;
  link) rm -rf "$PREFIX/node_modules"; ln -s "$SRC/node_modules" "$PREFIX/node_modules" ;;
esac
"$NODE_BIN" -e "import('$PREFIX/dist/src/agent/config.js').then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); })" \
  || die "the installed program does not load; see the error above"

if [ "$CREATE_USER" = 1 ] && ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  say "creating system user $SERVICE_USER"
  useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  # Raspberry Pi firmware (vcgencmd) and Jetson GPU nodes are group video.
  if getent group video >/dev/null; then usermod -aG video "$SERVICE_USER"; fi
fi

say "state in $STATE_DIR, config in $CONFIG_DIR"
mkdir -p "$STATE_DIR" "$CONFIG_DIR"
chmod 750 "$STATE_DIR"
if id -u "$SERVICE_USER" >/dev/null 2>&1; then chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"; fi
if [ ! -f "$CONFIG_DIR/config.json" ]; then
  if [ -n "$BROKER_URL" ]; then broker="{ \"url\": \"$BROKER_URL\" }"; else broker='{}'; fi
  cat >"$CONFIG_DIR/config.json" <<EOF
{
  "v": 1,
  "fleet": "default",
  "broker": $broker
}
EOF
  chmod 640 "$CONFIG_DIR/config.json"
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then chgrp "$SERVICE_USER" "$CONFIG_DIR/config.json"; fi
fi
# Check the config now rather than in a restart loop.
EDGETUNE_STATE_DIR=$STATE_DIR "$NODE_BIN" -e "import('$PREFIX/dist/src/agent/config.js').then((m) => m.loadConfig({ file: '$CONFIG_DIR/config.json' })).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); })" \
  || die "$CONFIG_DIR/config.json is not valid (see above); fix it and run again"

mkdir -p "$UNIT_DIR"
unit >"$UNIT_DIR/edgetune-agent.service"
say "wrote $UNIT_DIR/edgetune-agent.service"

if [ "$START" = 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now edgetune-agent.service
  say "started: systemctl status edgetune-agent; logs: journalctl -u edgetune-agent -o cat"
else
  say "not started (--no-start, or no systemd here); start it with: systemctl daemon-reload && systemctl enable --now edgetune-agent"
fi
