#!/usr/bin/env bash
# The device checks of issue 26 in one run, on a machine with a GPU (modscope not installed: it runs
# from this checkout with PYTHONPATH). Receipts go to $OUT (at most a few files, one folder deep).
#
#   OUT=/some/dir bash benchmarks/device/run.sh                      # the H200 run (DEVICE=cuda)
#   DEVICE=cpu QUICK=1 OUT=/tmp/out bash benchmarks/device/run.sh    # a CPU-only check that it runs
#
# T_TESTS, T_SCORING, T_MODELS (seconds) cap the steps; MODELS_BUDGET is gpu_models.py's --budget.
# Steps, each under its own time limit (the whole run stays under about 6 minutes on an H200):
#   1. the tests parametrised over CUDA (pytest -m cuda; on DEVICE=cpu their CPU twins) -> $OUT/tests.log
#   2. benchmarks/gpu_scoring.py: layer shuffles, GPT-2-small blocks and whole graph, LLaMA-7B-shaped
#      blocks, GPU against the machine's cores                        -> $OUT/gpu_scoring.json
#   3. the other helper's benchmarks/gpu_models.py (knockout, masks, training), when it is there
#                                                                     -> $OUT/gpu_models.json
#   4. a summary table of every receipt, printed last.
set -u
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
OUT=${OUT:?set OUT to the folder for the receipts}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/../.." || exit 2
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
quick=()
[ "$QUICK" = 1 ] && quick=(--quick)
t0=$(date +%s)
status=0

echo "== modscope device run: DEVICE=$DEVICE QUICK=$QUICK OUT=$OUT ($(getconf _NPROCESSORS_ONLN) cores)"
"$PY" - <<'EOF'
import importlib, sys
need = ["numpy", "scipy", "torch", "safetensors", "pandas", "sklearn", "threadpoolctl", "pytest", "tqdm"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA build {torch.version.cuda}), "
      f"CUDA available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
print("missing modules:", ", ".join(missing) or "none")
EOF
# modscope's progress bars need tqdm; where it is absent a silent stand-in is put on the path
if ! "$PY" -c "import tqdm" 2>/dev/null; then
  shim=$(mktemp -d)
  mkdir -p "$shim/tqdm"
  cat > "$shim/tqdm/__init__.py" <<'EOF'
class tqdm:  # a silent stand-in: modscope only creates, updates and closes its bars
    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable, self.n, self.total = iterable, kwargs.get("initial", 0), kwargs.get("total", 0)
    def __iter__(self):
        return iter(self.iterable)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def update(self, n=1):
        self.n += n
    def set_postfix(self, *args, **kwargs):
        pass
    def set_description(self, *args, **kwargs):
        pass
    def close(self):
        pass
EOF
  echo "from . import tqdm" > "$shim/tqdm/auto.py"
  export PYTHONPATH="$PYTHONPATH:$shim"
  echo "(tqdm absent: a silent stand-in is used)"
fi

echo "== 1. tests (device $DEVICE)"
if [ "$DEVICE" = cpu ]; then marker="not cuda"; else marker="cuda"; fi
timeout "${T_TESTS:-240}" "$PY" -m pytest -q -p no:cacheprovider -m "$marker" tests/clustering/test_kmeans_torch.py \
  tests/workflows/test_model_devices.py > "$OUT/tests.log" 2>&1
rc=$?
tail -n 15 "$OUT/tests.log"
[ $rc -ne 0 ] && { echo "tests: exit $rc"; status=1; }

echo "== 2. benchmarks/gpu_scoring.py (about 5 minutes on an H200)"
timeout "${T_SCORING:-420}" "$PY" benchmarks/gpu_scoring.py --device "$DEVICE" ${quick[@]+"${quick[@]}"} --out "$OUT"
rc=$?
[ $rc -ne 0 ] && { echo "gpu_scoring: exit $rc"; status=1; }

echo "== 3. the other helper's benchmark (knockout, masks, training on the device)"
# ---- OTHER HELPER'S BENCHMARK: benchmarks/gpu_models.py (issue 26, knockout/masks/train side) ----
if [ -f benchmarks/gpu_models.py ]; then
  timeout "${T_MODELS:-420}" "$PY" benchmarks/gpu_models.py --device "$DEVICE" ${quick[@]+"${quick[@]}"} \
    --budget "${MODELS_BUDGET:-130}" --out "$OUT"
  rc=$?
  [ $rc -ne 0 ] && { echo "gpu_models: exit $rc"; status=1; }
else
  echo "(benchmarks/gpu_models.py is not in this checkout: skipped)"
fi
# ---- end of the other helper's part ----

echo "== 4. summary ($(( $(date +%s) - t0 )) s so far)"
"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for path in sorted(out.glob("*.json")):
    try:
        receipt = json.loads(path.read_text())
    except ValueError:
        print(f"{path.name}: not JSON"); continue
    results = receipt.get("results", receipt)
    print(f"--- {path.name} ({receipt.get('date', '?')})")
    machine = results.get("machine") if isinstance(results, dict) else None
    if machine:
        print("    " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    lines = results.get("summary") if isinstance(results, dict) else None
    if isinstance(lines, list):
        print("\n".join("    " + str(line) for line in lines))
    else:
        print("    " + json.dumps(results, default=str)[:600])
log = out / "tests.log"
if log.exists():
    tail = [l for l in log.read_text().splitlines() if l.strip()][-1:]
    print(f"--- tests: {tail[0] if tail else '?'}")
EOF
echo "== done in $(( $(date +%s) - t0 )) s, status $status"
exit $status
