#!/usr/bin/env bash
# Render a run directory's cryopick HTML report with headless Chromium to a PNG screenshot.
#
# usage: benchmarks/render_report.sh RUN_DIR OUT.png [WIDTH,HEIGHT]
#   RUN_DIR is a run directory (its report is (re)built with `cryopick report`) or an .html file.
#   Environment: PYTHON (default: the repo's .venv python), CHROMIUM (default: chromium on PATH).
# The window defaults to 1280x2400; Chromium cannot reach the network (everything is embedded).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 RUN_DIR|REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
src=$1
out=$2
size=${3:-1280,2400}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
[[ -x $python ]] || python=python3
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z $chromium ]]; then
  echo "$0: chromium not found (apt-get install -y chromium, or set CHROMIUM)" >&2
  exit 3
fi

if [[ -d $src ]]; then
  html="$src/report.html"
  PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" "$python" -m cryopick.cli report "$src" --out "$html"
elif [[ -f $src ]]; then
  html=$src
else
  echo "$0: $src: no such directory or file" >&2
  exit 2
fi
html_abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
url=$("$python" -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).as_uri())' "$html_abs")
mkdir -p "$(dirname "$out")"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# the screenshot is written to a temporary name, then moved into place (atomic for readers)
tmp_png="$(dirname "$out_abs")/.$(basename "$out_abs").$$.tmp.png"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --screenshot="$tmp_png" --window-size="$size" \
  "$url" >/dev/null 2>&1 || { rm -f "$tmp_png"; echo "$0: chromium failed" >&2; exit 1; }
if [[ ! -s $tmp_png ]]; then
  rm -f "$tmp_png"
  echo "$0: chromium wrote no screenshot" >&2
  exit 1
fi
mv -f "$tmp_png" "$out_abs"
echo "wrote $out_abs ($size) from $html_abs"
