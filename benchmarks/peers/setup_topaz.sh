#!/usr/bin/env bash
# Create (idempotently) the Topaz peer environment: benchmarks/peers/.venv-topaz
# with topaz-em 0.3.20 on the CPU build of torch.
#
# Topaz is a benchmark *peer*: it lives in its own venv and is driven as an
# external program by run_topaz.py.  It is never a dependency of cryopick.
#
# Usage:   bash benchmarks/peers/setup_topaz.sh [--force]
# Env:     PYTHON=python3.11   interpreter used to create the venv (must be
#                              CPython 3.11: the local torch CPU wheel is cp311)
#          TOPAZ_VENV=...      venv location (default: benchmarks/peers/.venv-topaz)
#
# What it does:
#   1. creates the venv (python -m venv);
#   2. dry-runs the install with the constraints file and ABORTS if the resolver
#      would pick anything but torch 2.13.0+cpu or any nvidia-* package (any
#      other torch pulls gigabytes of CUDA wheels);
#   3. installs topaz-em==0.3.20 (+ starfile, for reading RELION STAR labels)
#      with `-c topaz-constraints.txt`;
#   4. installs torchvision_cpu_shim (see that file): the PyPI torchvision 0.28.0
#      wheel is built against the CUDA torch, its _C.so needs libc10_cuda.so and
#      cannot load, and `import torchvision` then dies in
#      torchvision/_meta_registrations.py ("operator torchvision::nms does not
#      exist").  A .pth file in the venv's site-packages installs an import hook
#      that replaces that one module with an empty stub *only when the C ops
#      failed to load*.  Topaz only uses torchvision's pure-Python transforms
#      (rotate/hflip/vflip), which work unchanged.  No installed file is edited.
#   5. smoke-tests: import torchvision + topaz, `topaz --help`.
# A stamp file records a hash of the inputs; re-running is a no-op while the
# venv is healthy and the inputs are unchanged.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${TOPAZ_VENV:-$HERE/.venv-topaz}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$HERE/topaz-constraints.txt"
SHIM="$HERE/torchvision_cpu_shim.py"
STAMP="$VENV/.cryopick-peer-stamp"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { echo "[setup_topaz] $*" >&2; }

inputs_hash() {
    cat "$CONSTRAINTS" "$SHIM" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

healthy() {
    [[ -x "$VENV/bin/topaz" && -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" - <<'PY' >/dev/null 2>&1 || return 1
import importlib.metadata as md
import torch, torchvision
from torchvision.transforms.functional import rotate, hflip, vflip
import topaz.utils.data.sampler  # imports torchvision.transforms.functional
assert md.version("topaz-em") == "0.3.20"
assert torch.__version__.startswith("2.13.0"), torch.__version__
PY
}

want="$(inputs_hash)"
if [[ $FORCE -eq 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && healthy; then
    log "up to date: $VENV"
    exit 0
fi

t0=$(date +%s)

# ---- 1. the venv --------------------------------------------------------
pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$pyver" != "3.11" ]]; then
    log "ERROR: $PYTHON is Python $pyver; need 3.11 (the local torch CPU wheel is cp311). Set PYTHON=..."
    exit 2
fi
if [[ $FORCE -eq 1 && -d "$VENV" ]]; then
    log "--force: removing $VENV"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV ($PYTHON, Python $pyver)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
PKGS=("topaz-em==0.3.20" "starfile")

# ---- 2. dry run: refuse any CUDA torch / nvidia packages ----------------
log "resolving (dry run) ..."
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"${PIP[@]}" install --quiet --dry-run --ignore-installed --report "$report" \
    -c "$CONSTRAINTS" "${PKGS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
"$VENV/bin/python" - "$report" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in rep["install"]}
bad = sorted(n for n in names if n.startswith("nvidia") or n in ("triton", "cuda-toolkit"))
torch = names.get("torch")
if bad or (torch is not None and torch != "2.13.0+cpu"):
    sys.exit(f"[setup_topaz] ABORT: resolver wants torch={torch} and CUDA packages {bad}; "
             "check topaz-constraints.txt")
print(f"[setup_topaz] dry run OK: torch={torch}, {len(names)} packages, no CUDA packages",
      file=sys.stderr)
PY

# ---- 3. install -----------------------------------------------------------
log "installing ${PKGS[*]} ..."
"${PIP[@]}" install --quiet -c "$CONSTRAINTS" "${PKGS[@]}" \
    2> >(grep -v "is ignored: it is neither" >&2)

# ---- 4. torchvision shim --------------------------------------------------
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$SHIM" "$SITE/torchvision_cpu_shim.py"
# .pth lines starting with "import" are executed at interpreter start-up.
echo "import torchvision_cpu_shim" > "$SITE/torchvision_cpu_shim.pth"
log "installed torchvision shim into $SITE"

# ---- 5. smoke test --------------------------------------------------------
if ! healthy; then
    log "ERROR: smoke test failed; details:"
    "$VENV/bin/python" -c "import torchvision, topaz.utils.data.sampler" || true
    exit 1
fi
"$VENV/bin/topaz" --help >/dev/null
"$VENV/bin/python" -c "import torch, torchvision, importlib.metadata as m; print('[setup_topaz] torch', torch.__version__, '| torchvision', torchvision.__version__, '(C ops loaded:', torchvision.extension._has_ops(), ') | topaz-em', m.version('topaz-em'))" >&2
echo "$want" > "$STAMP"
log "done in $(( $(date +%s) - t0 )) s: $VENV/bin/topaz"
