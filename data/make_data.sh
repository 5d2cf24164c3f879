#!/usr/bin/env bash
# Regenerates every example checkpoint in data/ with modscope's own trainer.
# Run from the repository root: bash data/make_data.sh  (about 2 minutes on 2 cores)
set -euo pipefail
MS=${MODSCOPE:-.venv/bin/modscope}
export OMP_NUM_THREADS=1   # one thread: bit-identical checkpoints on the same CPU type
$MS train --task digits --seed 0 --no-progress --out data/digits-plain.pt --json data/digits-plain.json
$MS train --task digits --seed 0 --dropout 0.2 --prune 0.9 --no-progress --out data/digits-pruned.pt --json data/digits-pruned.json
$MS train --task formula-independence --seed 2 --no-progress --out data/independence-plain.pt --json data/independence-plain.json
$MS train --task formula-independence --seed 2 --bimt --no-progress --out data/independence-bimt.pt --json data/independence-bimt.json
$MS train --task halves --seed 0 --no-progress --out data/halves-plain.pt --json data/halves-plain.json
