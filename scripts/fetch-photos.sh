#!/bin/sh
# Real photographs for `npm run bench:quant`: the sample images that scikit-image ships (astronaut, coffee, a cat,
# motorcycles, a rocket, coins, text…; public domain / CC0 per scikit-image's data README), taken from Debian's
# python3-skimage package without installing it (apt-get download + dpkg -x: no Python, no dependencies).
# They calibrate the corpus detectors and OCR models, for which random noise gives meaningless int8 ranges.
# Developer side only: never needed at run time or by npm test. Usage: scripts/fetch-photos.sh [dir]
set -eu
dest="${1:-${EDGETUNE_PHOTOS:-$HOME/.cache/edgetune/photos}}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
apt-get download python3-skimage >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download python3-skimage >/dev/null; }
dpkg -x python3-skimage_*.deb x
src="x/usr/lib/python3/dist-packages/skimage/data"
mkdir -p "$dest"
for f in astronaut.png coffee.png motorcycle_left.png motorcycle_right.png rocket.jpg camera.png coins.png text.png \
         chelsea.png page.png moon.png hubble_deep_field.jpg; do
  cp "$src/$f" "$dest/$f"
done
echo "12 photos in $dest (from Debian python3-skimage $(dpkg-deb -f python3-skimage_*.deb Version))"
