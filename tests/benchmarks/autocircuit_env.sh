#!/usr/bin/env bash
# Build (idempotently) the private virtual environment in which the peer tool
# auto-circuit runs for the edge-attribution benchmark.
#
# auto-circuit 1.0.1 imports HookedTransformerKeyValueCache from the top level
# of transformer_lens, which TransformerLens 3.x no longer exports, so it gets
# its own venv with a transformer-lens 2.x (and the transformers 4.x that goes
# with it) instead of sharing the system site-packages.
#
# Usage:  bash tests/benchmarks/autocircuit_env.sh
#         -> prints the venv's python path on its last line of stdout.
# Env:    PYTHON=...            interpreter to build the venv from (default python3)
#         AUTOCIRCUIT_VENV=...  venv location (default <repo>/runs/venv-autocircuit)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${AUTOCIRCUIT_VENV:-$repo/runs/venv-autocircuit}"
py="${PYTHON:-python3}"

# Versions checked to work together (CPython 3.11, CPU only).
TORCH_VERSION="2.13.0"
TL_VERSION="2.18.0"            # last 2.x; still exports HookedTransformerKeyValueCache
TRANSFORMERS_VERSION="4.57.6"  # TL 2.18 wants >=4.57 and huggingface-hub<1.0 (so 4.x)
AUTOCIRCUIT_VERSION="1.0.1"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

# auto-circuit's declared dependencies that its edge-scoring path really imports
# (types.py -> plotly, graph_utils -> sparse_autoencoder -> blobfile,
# data.py -> attr, ordered_set, einops).  It is installed with --no-deps
# because the rest of its list is not used here and is heavy or harmful:
# tracr-pypi (pulls jax / dm-haiku; only for tracr toy models), kaleido
# (static plot export), word2word (unused), vscode-tqdm (a fork that would
# replace the tqdm module).
AC_DEPS=(
  "plotly==7.1.0"
  "blobfile==3.3.0"
  "ordered-set==4.1.0"
  "attrs==26.1.0"
  "einops==0.8.2"
)
# TL 2.18 caps numpy <2 on Python 3.11, while pyarrow >=22 (pulled in through
# datasets) needs numpy 2: pin the pair that imports together.
EXTRA=(
  "numpy==1.26.4"
  "pyarrow==21.0.0"
  "datasets==5.0.1"
  "safetensors==0.8.0"
  "psutil==7.2.2"
)

log() { echo "[autocircuit_env] $*" >&2; }

if [[ ! -x "$venv/bin/python" ]]; then
  log "creating venv at $venv"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
pipi() { "$vpy" -m pip install --disable-pip-version-check -q "$@" >&2; }

# Quick exit when everything is already there at the pinned versions.
if "$vpy" - "$TORCH_VERSION" "$TL_VERSION" "$TRANSFORMERS_VERSION" "$AUTOCIRCUIT_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["torch", "transformer-lens", "transformers", "auto-circuit"], sys.argv[1:]))
for name, v in want.items():
    have = version(name)
    if have.split("+")[0] != v:
        raise SystemExit(1)
for name in ["plotly", "blobfile", "ordered-set", "attrs", "einops", "safetensors", "psutil"]:
    version(name)
import torch, pyarrow, datasets, transformers  # noqa: F401,E401
import auto_circuit.prune_algos.mask_gradient  # noqa: F401  (the import that fails on TL 3.x)
EOF
then
  log "venv already complete"
  echo "$vpy"
  exit 0
fi

# 1. CPU torch: the PyTorch CPU index when it can be reached, else plain
#    PyPI torch (pip's own config may also offer a local +cpu wheel, which pip
#    then prefers because 2.x.y+cpu sorts above 2.x.y).
have_torch="$("$vpy" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
if [[ "${have_torch%%+*}" != "$TORCH_VERSION" ]]; then
  if "$vpy" -c "import urllib.request,sys; urllib.request.urlopen('$CPU_INDEX/', timeout=10)" 2>/dev/null; then
    log "installing torch==$TORCH_VERSION from the PyTorch CPU index"
    pipi "torch==$TORCH_VERSION" --index-url "$CPU_INDEX"
  else
    log "PyTorch CPU index unreachable; installing torch==$TORCH_VERSION from PyPI/pip config"
    pipi "torch==$TORCH_VERSION"
  fi
fi

# 2. transformer-lens 2.x with its dependencies (torch already satisfied, so pip
#    keeps the CPU build), transformers pinned to a 4.x that TL 2.18 accepts.
log "installing transformer-lens==$TL_VERSION, transformers==$TRANSFORMERS_VERSION, deps"
pipi "torch==$TORCH_VERSION" "transformer-lens==$TL_VERSION" \
  "transformers==$TRANSFORMERS_VERSION" "${AC_DEPS[@]}" "${EXTRA[@]}"

# 3. auto-circuit itself, without its unused heavy dependencies (see above).
log "installing auto-circuit==$AUTOCIRCUIT_VERSION (--no-deps)"
pipi --no-deps "auto-circuit==$AUTOCIRCUIT_VERSION"

"$vpy" -c "import auto_circuit.prune_algos.mask_gradient, transformer_lens, torch; \
print('torch', torch.__version__, 'transformer_lens ok', file=__import__('sys').stderr)"
echo "$vpy"
