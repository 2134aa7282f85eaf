#!/usr/bin/env bash
# arm64 cross-check on an x86-64 host, under qemu-user emulation: onnxruntime-node's arm64 binary loads and
# runs a tiny model, and the profile's ARM probes run on the emulated CPU. Debian's arm64 Node (18) and its
# libraries are downloaded as .debs and unpacked into a private root (they would conflict with the host's
# Node if installed), then run with `qemu-aarch64-static -L <root>`. Timings under emulation mean nothing
# and are not reported. Skips cleanly, with a message, where qemu or the arm64 packages cannot be had.
set -uo pipefail
cd "$(dirname "$0")/.."

skip() { echo "arm64 cross-check: SKIPPED: $*"; exit 0; }
[ "$(uname -m)" = x86_64 ] || skip "host is $(uname -m); this check emulates arm64 on x86_64"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get (not Debian/Ubuntu)"
[ -d node_modules/onnxruntime-node/bin/napi-v6/linux/arm64 ] || skip "onnxruntime-node ships no linux/arm64 binary here"
SUDO=""
if [ "$(id -u)" != 0 ]; then sudo -n true 2>/dev/null || skip "needs root or passwordless sudo for apt-get"; SUDO="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive

if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
  echo "== installing qemu-user-static"
  $SUDO apt-get install -y -qq qemu-user-static >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq qemu-user-static >/dev/null 2>&1; } \
    || skip "cannot install qemu-user-static"
fi

cache=node_modules/.cache/edgetune-arm64
root="$cache/root"
mkdir -p "$cache/debs"
if [ ! -x "$root/usr/bin/node" ]; then
  echo "== fetching Debian's arm64 nodejs and its libraries (multiarch)"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then $SUDO dpkg --add-architecture arm64 || skip "cannot add the arm64 architecture"; fi
  $SUDO apt-get update -qq >/dev/null 2>&1 || skip "apt-get update failed with arm64 enabled"
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends nodejs:arm64 2>/dev/null \
    | grep -E '^([a-z0-9][a-z0-9.+-]*:arm64|node-[a-z0-9.+-]+)$' | sort -u)
  # Debian's Node loads some built-ins from arch-independent node-* packages (/usr/share/nodejs), hence those too.
  [ -n "$pkgs" ] || skip "apt knows no nodejs:arm64 package"
  (cd "$cache/debs" && for p in $pkgs; do apt-get download -qq "$p" >/dev/null 2>&1 || true; done)
  ls "$cache/debs"/nodejs_*arm64.deb >/dev/null 2>&1 || skip "could not download nodejs:arm64"
  mkdir -p "$root"
  for d in "$cache"/debs/*_arm64.deb "$cache"/debs/*_all.deb; do [ -e "$d" ] && dpkg-deb -x "$d" "$root"; done
  [ -x "$root/usr/bin/node" ] || skip "the arm64 nodejs package has no usr/bin/node"
fi

run_arm64() { qemu-aarch64-static -L "$root" "$root/usr/bin/node" "$@"; }
# qemu-user passes the host's x86 /proc/cpuinfo through to the guest, and onnxruntime's CPU detection (the cpuinfo
# library) crashes on it (SIGSEGV at load). Inside a private mount namespace we bind a recorded Raspberry Pi 5
# /proc/cpuinfo (test/fixtures/profile/raspberry-pi-5, see its SOURCE.md) over it, so the guest sees an ARM CPU.
arm_cpuinfo="$PWD/test/fixtures/profile/raspberry-pi-5/proc/cpuinfo"
run_arm64_armproc() {
  if command -v unshare >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ -f "$arm_cpuinfo" ]; then
    unshare -m bash -c 'mount --bind "$0" /proc/cpuinfo && shift && exec qemu-aarch64-static -L "$1" "$1/usr/bin/node" "${@:2}"' "$arm_cpuinfo" _ "$root" "$@"
  else
    echo "(no private mount namespace here: the guest sees the host's x86 /proc/cpuinfo)"
    run_arm64 "$@"
  fi
}
echo "== arm64 node: $(run_arm64 -p 'process.arch + " " + process.version' 2>&1)"

echo "== preparing the tiny model and the Node 18 profile bundle (host side)"
npx --no-install tsx scripts/arm64-smoke-prepare.ts "$cache/tiny.onnx" || { echo "arm64 cross-check: FAILED preparing the model"; exit 1; }
npx --no-install esbuild src/profile/index.ts --bundle --platform=node --format=esm --target=node18 \
  --external:onnxruntime-node --external:systeminformation --log-level=warning --outfile="$cache/profile.mjs" \
  || { echo "arm64 cross-check: FAILED bundling the profile"; exit 1; }

failed=0
echo "== profile (ARM probes) under qemu-aarch64"
run_arm64 scripts/arm64-smoke.mjs - "$PWD/$cache/profile.mjs" 2>&1 || failed=1
echo "== onnxruntime-node arm64 binary: load and run the tiny model under qemu-aarch64"
run_arm64_armproc scripts/arm64-smoke.mjs "$PWD/$cache/tiny.onnx" - 2>&1 || { status=$?; failed=1; echo "onnxruntime-node arm64: FAILED (exit $status$([ $status -ge 128 ] && echo ", killed by signal $((status - 128))"))"; }
if [ $failed -ne 0 ]; then echo "arm64 cross-check: FAILED"; exit 1; fi
echo "arm64 cross-check: passed"
