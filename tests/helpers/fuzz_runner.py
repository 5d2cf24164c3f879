"""Runs a batch of fuzz cases in this process, under a memory cap and a per-case time cap.

``python tests/helpers/fuzz_runner.py CASES.json RESULTS.json``: each case is ``{"id", "argv"}`` (a
``modscope`` command line, run through ``modscope.cli.main``) or ``{"id", "call", "path"}`` (a
reader called on a file, its exceptions mapped as the command line maps them: `ModscopeError`
-> 2, anything else -> 1). For every case the result holds the exit code, the seconds it took,
the process's peak RSS so far and the last lines of stderr. Used by tests/graphs/files/test_fuzz_inputs.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time

CASE_SECONDS = 10
ADDRESS_SPACE = 6 * 2**30  # a safety net for the machine; the test checks peak RSS < 1 GiB


class CaseTimeout(BaseException):  # not an Exception: no reader may catch it
    pass


def _alarm(signum, frame):
    raise CaseTimeout


def _call(name: str, path: str) -> None:
    if name == "load_graph":
        from modscope import load_graph

        load_graph(path)
    elif name == "load_data":
        from modscope.data import load_data

        data = load_data(path)
        for split in ("test", "train"):
            try:
                s = data.split(split)
            except Exception:
                if split == "train":
                    continue
                raise
            for _ in s.batches(64):
                pass
    elif name == "read_idx":
        from modscope.data.idx import read_idx

        read_idx(path)
    elif name == "load_image_data":
        from modscope.data.idx import load_image_data

        load_image_data(path)
    else:  # pragma: no cover
        raise SystemExit(f"unknown call {name}")


def run_case(case: dict) -> tuple[int | str, str]:
    from modscope.cli import main
    from modscope.errors import ModscopeError

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        if "argv" in case:
            try:
                code: int | str = main(case["argv"])
            except SystemExit as exc:
                code = f"SystemExit({exc.code})"
        else:
            try:
                _call(case["call"], case["path"])
                code = 0
            except ModscopeError as exc:
                print(f"modscope: error: {exc}", file=sys.stderr)
                code = 2
            except MemoryError:
                code = "MemoryError"
            except CaseTimeout:
                raise
            except Exception as exc:
                print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
                code = 1
    return code, err.getvalue()


def _warm_up() -> None:
    """Pay torch.export's first-use cost (seconds) before the per-case clock runs."""
    import torch

    import modscope.cli  # noqa: F401
    from modscope.graphs.tracing import trace_graph

    trace_graph(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2)),
                torch.zeros(1, 3))
    for name in ("onnx", "h5py", "safetensors"):
        try:
            __import__(name)
        except ImportError:
            pass


def main() -> None:
    cases = json.loads(open(sys.argv[1]).read())
    out = sys.argv[2]
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    os.environ["MODSCOPE_MAX_MEMORY"] = os.environ.get("FUZZ_MAX_MEMORY", "64M")
    import warnings

    warnings.simplefilter("ignore")
    _warm_up()

    signal.signal(signal.SIGALRM, _alarm)
    results = []
    for case in cases:
        start = time.perf_counter()
        signal.alarm(CASE_SECONDS)
        try:
            code, stderr = run_case(case)
        except CaseTimeout:
            code, stderr = "timeout", ""
        finally:
            signal.alarm(0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        results.append(
            {
                "id": case["id"],
                "code": code,
                "seconds": round(time.perf_counter() - start, 3),
                "peak_rss": peak,
                "stderr": lines[-3:],
                "traceback": any("Traceback" in ln for ln in lines),
            }
        )
        with open(out, "w") as fh:  # what finished survives a crash of the batch
            json.dump(results, fh)


if __name__ == "__main__":
    main()
