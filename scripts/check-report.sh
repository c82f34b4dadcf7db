#!/usr/bin/env bash
# Renders a report of `oxmm run --report DIR` in headless Chromium and
# checks that the page is not blank: DIR/screenshot.png must exist and
# hold more than a few colors (the charts' lines and fills).
#
#   scripts/check-report.sh DIR
#
# Installs Debian's `chromium` with apt-get when /usr/bin/chromium is
# missing (needs root). Not part of CI: a person's check that the page and
# its SVG charts render.
set -euo pipefail

dir=${1:?usage: scripts/check-report.sh DIR (a directory written by oxmm run --report)}
if [[ ! -f "$dir/index.html" ]]; then
    echo "check-report: no index.html in $dir" >&2
    exit 1
fi
dir=$(cd "$dir" && pwd)

chromium=/usr/bin/chromium
if [[ ! -x $chromium ]]; then
    echo "check-report: installing chromium with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
shot="$dir/screenshot.png"
rm -f "$shot"
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --window-size=1400,2000 --screenshot="$shot" \
    "file://$dir/index.html" >/dev/null 2>&1 || true

if [[ ! -s $shot ]]; then
    echo "check-report: chromium wrote no screenshot ($shot)" >&2
    exit 1
fi

# A blank page is one or two colors; charts give many. Reads the PNG with
# the standard library only (zlib), 8-bit RGB or RGBA, non-interlaced, as
# Chromium writes it.
python3 - "$shot" <<'EOF'
import struct, sys, zlib

path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"check-report: {path} is not a PNG")
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype, _, _, interlace = ihdr
if depth != 8 or ctype not in (2, 6) or interlace:
    # Not a layout this reader decodes: fall back on the file size.
    ok = len(data) > 20000
    print(f"check-report: {path}: {w}x{h}, {len(data)} bytes (colors not counted)")
    sys.exit(0 if ok else f"check-report: {path} looks blank")
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colors = set()
i = 0
for y in range(h):
    f = raw[i]
    line = bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1:
            line[x] = (line[x] + a) & 255
        elif f == 2:
            line[x] = (line[x] + b) & 255
        elif f == 3:
            line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[x] = (line[x] + pred) & 255
    if y % 4 == 0:
        for x in range(0, stride, bpp * 2):
            colors.add(bytes(line[x:x + 3]))
    prev = line
print(f"check-report: {path}: {w}x{h}, {len(colors)} distinct colors")
if len(colors) < 16:
    sys.exit(f"check-report: {path} looks blank ({len(colors)} colors)")
EOF
echo "check-report: ok, see $shot"
