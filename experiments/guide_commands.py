"""What the user guide's commands print: each CLI run as a user types it, its stdout kept verbatim
in one receipt (``scripts/render_docs.py`` renders each into ``docs/generated/cmd_<name>.md``), and
the figures the ``plot`` commands draw copied to ``docs/assets/guide/``.

The commands run on the checkpoints the repository ships (``data/``) and, for the pages about your
own model and data, on files this script writes into a scratch folder the commands run in:

- ``mypackage/models.py`` with ``make_net()``, a small CNN for 8×8 greyscale images, and
  ``make_resnet()``, a small residual CNN for them (two blocks on one residual stream);
- ``weights.safetensors``, that CNN trained for 300 steps on scikit-learn's digits;
- ``resnet.safetensors``, the residual CNN trained the same way;
- ``digits.npz``, scikit-learn's digits as ``x_train, y_train, x_test, y_test`` (1×8×8 images);
- ``gpt2.safetensors``, a two-block GPT-2-layout state dict of random weights;

and, for ``--scheduler``, a Dask scheduler with two single-thread workers on 127.0.0.1 (the
``distributed`` extra). ``--only a,b`` reruns those commands and keeps the receipt's others.

Small settings (few shuffles, steps and lesions) keep the whole run near a minute on one core; the
guide pages say which settings a real analysis needs. Paths of the scratch folder never reach the
receipt (outputs are shown relative to it)::

    .venv/bin/python experiments/guide_commands.py --out experiments/guide_commands.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modscope.runtime.receipts import write_receipt

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "docs" / "assets" / "guide"
DATA = str(ROOT / "data")
DIGIT_FUNCTIONS = ["--function", "small=0,1,2,3,4", "--function", "large=5,6,7,8,9"]
MODEL = ["--model", "mypackage.models:make_net", "--input-shape", "1,1,8,8"]

# name -> argv after `modscope` ({data}: the repository's data/ folder, shown as data/) and the
# figure it writes (copied to docs/assets/guide/<name>.png), in the order they run
COMMANDS: dict[str, tuple[list[str], str | None]] = {
    "score": (["score", "{data}/digits-pruned.pt", "--clusters", "12", "--shuffles", "20", "--seed", "0",
               "--json", "score.json"], None),
    "score_nonzero": (["score", "{data}/digits-pruned.pt", "--clusters", "12", "--shuffles", "20", "--seed",
                       "0", "--shuffle-method", "layer_nonzero"], None),
    "knockout": (["knockout", "{data}/halves-plain.pt", "--clusters", "4", "--random", "50", "--pairs",
                  "--seed", "0", "--json", "knockout.json"], None),
    "masks": (["masks", "{data}/halves-plain.pt", "--functions", "left,right", "--steps", "300",
               "--seed", "0", "--json", "masks.json"], None),
    "train": (["train", "--task", "digits", "--steps", "300", "--seed", "0", "--out", "digits.pt"], None),
    "train_bimt": (["train", "--task", "formula-independence", "--bimt", "--steps", "400", "--seed", "0",
                    "--out", "independence_bimt.pt"], None),
    "plot_network": (["plot", "network", "independence_bimt.pt", "--clusters", "2", "--out", "network.png"],
                     "network.png"),
    "plot_histogram": (["plot", "histogram", "score.json", "--out", "histogram.png"], "histogram.png"),
    "plot_lesions": (["plot", "lesions", "knockout.json", "--out", "lesions.png"], "lesions.png"),
    "plot_masks": (["plot", "masks", "masks.json", "--out", "masks.png"], "masks.png"),
    "plot_model_network": (["plot", "network", "resnet.safetensors", "--model",
                            "mypackage.models:make_resnet", "--input-shape", "1,1,8,8", "--clusters", "3",
                            "--out", "resnet_network.png"], "resnet_network.png"),
    "report": (["report", "score.json", "knockout.json", "masks.json", "--out", "my-report"], None),
    "model_score": (["score", "weights.safetensors", *MODEL, "--clusters", "4", "--shuffles", "10",
                     "--seed", "0"], None),
    "model_knockout": (["knockout", "weights.safetensors", *MODEL, "--data", "digits.npz", *DIGIT_FUNCTIONS,
                        "--clusters", "4", "--random", "20", "--ablation", "mean", "--seed", "0"], None),
    "model_masks": (["masks", "weights.safetensors", *MODEL, "--data", "digits.npz", *DIGIT_FUNCTIONS,
                     "--steps", "200", "--seed", "0"], None),
    "blocks": (["blocks", "gpt2.safetensors", "--clusters", "3", "--shuffles", "10", "--seed", "0"], None),
    # the score above on a Dask cluster of two single-thread workers on loopback ({scheduler})
    "dask_score": (["score", "{data}/digits-pruned.pt", "--clusters", "12", "--shuffles", "20", "--seed", "0",
                    "--scheduler", "{scheduler}"], None),
}

MODELS_PY = '''"""A small CNN and a small residual CNN for 8x8 greyscale images (the guide's examples of
your own module)."""

import torch
from torch import nn


def make_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10),
    )


class Block(nn.Module):
    """Two 3x3 convs whose output is added to their input: the residual stream."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


def make_resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 12, 3, padding=1), nn.ReLU(), Block(12), Block(12),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10),
    )
'''


def modscope_argv() -> list[str]:
    """The console script beside this interpreter, or ``python -m modscope``."""
    script = Path(sys.executable).parent / "modscope"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modscope"]


def prepare(folder: Path) -> None:
    """The scratch folder's files: the module, its trained weights, the data, a GPT-2 state dict."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch

    import modscope

    (folder / "mypackage").mkdir()
    (folder / "mypackage" / "__init__.py").write_text("")
    (folder / "mypackage" / "models.py").write_text(MODELS_PY)
    sys.path.insert(0, str(folder))
    from mypackage.models import make_net, make_resnet  # the file just written

    task = modscope.get_task("digits", seed=0)
    arrays = {"x_train": task.x_train.numpy().reshape(-1, 1, 8, 8).astype(np.float32),
              "y_train": task.y_train[:, 0].numpy().astype(np.int64),
              "x_test": task.x_test.numpy().reshape(-1, 1, 8, 8).astype(np.float32),
              "y_test": task.y_test[:, 0].numpy().astype(np.int64)}
    np.savez(folder / "digits.npz", **arrays)
    torch.manual_seed(0)
    net = make_net()
    modscope.fit_model(net, modscope.load_data(arrays), steps=300, batch_size=64, lr=3e-3, seed=0,
                       progress=False)
    save_torch({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "weights.safetensors"))
    torch.manual_seed(0)
    resnet = make_resnet()
    modscope.fit_model(resnet, modscope.load_data(arrays), steps=300, batch_size=64, lr=3e-3, seed=0,
                       progress=False)
    save_torch({k: v.contiguous() for k, v in resnet.state_dict().items()},
               str(folder / "resnet.safetensors"))

    rng = np.random.default_rng(11)
    sd = {}
    for i in range(2):
        p = f"transformer.h.{i}."
        sd[p + "mlp.c_fc.weight"] = rng.normal(size=(16, 64)).astype(np.float32)  # in x out (GPT-2)
        sd[p + "mlp.c_proj.weight"] = rng.normal(size=(64, 16)).astype(np.float32)
        sd[p + "attn.c_proj.weight"] = rng.normal(size=(16, 16)).astype(np.float32)
    save_file(sd, str(folder / "gpt2.safetensors"))


@contextlib.contextmanager
def dask_cluster(folder: Path, env: dict[str, str]):
    """A scheduler and two single-thread workers on loopback; yields the scheduler's address."""
    from distributed import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = Path(sys.executable).parent / "dask"
    env = dict(env, PYTHONPATH=str(ROOT))
    log = open(folder / "dask.log", "w")  # noqa: SIM115 (closed below, after the processes)
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, env=env)]
    procs += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                "--host", "127.0.0.1", "--memory-limit", "0", "--death-timeout", "60"],
                               stdout=log, stderr=subprocess.STDOUT, env=env) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated command names; the receipt keeps the others")
    ap.add_argument("--out", default="experiments/guide_commands.json")
    args = ap.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    names = args.only.split(",") if args.only else list(COMMANDS)
    unknown = sorted(set(names) - set(COMMANDS))
    if unknown:
        sys.exit(f"guide_commands: unknown command(s) {', '.join(unknown)}; known: {', '.join(COMMANDS)}")
    results: dict[str, dict] = {}
    if args.only and (ROOT / args.out).is_file():
        results = json.loads((ROOT / args.out).read_text())["results"]["commands"]
    with tempfile.TemporaryDirectory(prefix="modscope-guide-") as scratch, contextlib.ExitStack() as stack:
        folder = Path(scratch)
        prepare(folder)
        os.symlink(DATA, folder / "data")  # the commands say data/..., as from the repository root
        ASSETS.mkdir(parents=True, exist_ok=True)
        scheduler = None
        for name in names:
            cmd, figure = COMMANDS[name]
            if "{scheduler}" in cmd and scheduler is None:
                scheduler = stack.enter_context(dask_cluster(folder, env))
            shown = [a.replace("{data}", "data").replace("{scheduler}", str(scheduler)) for a in cmd]
            start = time.perf_counter()
            quiet = [] if cmd[0] in ("plot", "report") else ["--no-progress"]  # stderr bars, not shown
            proc = subprocess.run([*modscope_argv(), *shown, *quiet], cwd=folder, env=env,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"{name}: modscope {' '.join(shown)} failed ({proc.returncode}):\n{proc.stderr}")
            results[name] = {
                "command_line": "modscope " + " ".join(shlex.quote(a) for a in shown),
                "argv": ["modscope", *shown],
                "returncode": proc.returncode,
                "stdout": proc.stdout.replace(str(folder) + "/", "").replace(str(folder), "."),
                "seconds": round(seconds, 2),
            }
            if figure:
                shutil.copy(folder / figure, ASSETS / figure)
                results[name]["figure"] = f"docs/assets/guide/{figure}"
            print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    settings = {"OMP_NUM_THREADS": "1", "scratch_files": ["mypackage/models.py", "weights.safetensors",
                                                          "resnet.safetensors", "digits.npz",
                                                          "gpt2.safetensors"]}
    results = {name: results[name] for name in COMMANDS if name in results}  # the table's order
    note = f"commands {', '.join(names)} rerun by --only; the others kept" if args.only else ""
    path = write_receipt(ROOT / args.out, {"commands": results}, settings=settings, note=note,
                         command=f"python experiments/guide_commands.py --out {args.out}")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
