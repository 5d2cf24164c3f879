"""Outputs that never destroy anything else, checked before the work starts (issue 29).

Writes go through symbolic links to their targets (atomically there), in place to character
devices and FIFOs, to standard output for ``-``; other special files and directories are refused
in one line. Device nodes are stood in by a mocked ``st_mode`` (never the real /dev).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading

import pytest
import torch

import modscope.runtime.atomic as atomic
from modscope.cli import main
from modscope.errors import ModscopeError
from modscope.runtime.atomic import check_distinct, check_output, write_json, write_text

SCORE = ["--shuffles", "2", "--clusters", "2", "--no-progress"]


@pytest.fixture
def net(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    module = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    torch.save(module.state_dict(), path)
    return path


def _as_device(monkeypatch, path, kind=stat.S_IFCHR):
    """``path`` (a regular file) reported as a device node / socket by the writer's stat."""
    real = atomic._mode
    target = os.path.realpath(path)

    def fake(p):
        return kind | 0o666 if os.path.realpath(p) == target else real(p)

    monkeypatch.setattr(atomic, "_mode", fake)


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json(link, {"a": 1})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == {"a": 1}
    # a chain of links, and a dangling one: the file it names is made
    chain = tmp_path / "chain.json"
    chain.symlink_to(link)
    write_text(chain, "x")
    assert chain.is_symlink() and link.is_symlink() and target.read_text() == "x"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "made.json")
    write_text(dangling, "y")
    assert dangling.is_symlink() and (tmp_path / "made.json").read_text() == "y"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_character_device_is_written_in_place_not_replaced(tmp_path, monkeypatch):
    dev = tmp_path / "null"
    dev.write_text("")
    inode = dev.stat().st_ino
    _as_device(monkeypatch, dev)
    monkeypatch.setattr(os, "replace", lambda *a: pytest.fail("a device node must not be renamed over"))
    write_json(dev, {"b": 2})
    assert dev.stat().st_ino == inode  # the same node, written in place
    assert json.loads(dev.read_text()) == {"b": 2}


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_text(fifo, "through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("kind", [stat.S_IFSOCK, stat.S_IFBLK])
def test_other_special_files_are_refused_in_one_line(tmp_path, monkeypatch, kind):
    special = tmp_path / "special"
    special.write_text("keep")
    _as_device(monkeypatch, special, kind)
    with pytest.raises(ModscopeError, match="socket or block device") as info:
        write_json(special, {})
    assert "\n" not in str(info.value)
    assert special.read_text() == "keep"


def test_dev_stdout_through_a_pipe_is_written_not_replaced(tmp_path):
    """/dev/stdout -> /proc/self/fd/1 -> "pipe:[...]": a path that cannot be resolved, written by
    its name (run in a child whose stdout is a pipe; /dev is only read)."""
    import subprocess

    code = "from modscope.runtime.atomic import write_text; write_text('/dev/stdout', 'piped')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "piped"


def test_dash_is_standard_output(capsys):
    write_json("-", {"c": 3})
    assert json.loads(capsys.readouterr().out) == {"c": 3}


def test_check_output_refuses_before_anything_is_written(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    for path, words in [
        (tmp_path / "d", "is a directory"),
        (tmp_path / "missing" / "x.json", "does not exist"),
        (tmp_path / "f" / "x.json", "Not a directory"),
    ]:
        with pytest.raises(ModscopeError, match=words):
            check_output(path, "--json")
    with pytest.raises(ModscopeError, match="is not a directory"):
        check_output(tmp_path / "f", "--cache", directory=True)
    with pytest.raises(ModscopeError, match="standard output"):
        check_output("-", "--save", stdout=False)
    check_output(tmp_path / "new.json", "--json")  # a new file in an existing folder is fine
    check_output(tmp_path / "newdir", "--cache", directory=True)
    with pytest.raises(ModscopeError, match="name the same file"):
        check_distinct({"--out": tmp_path / "m.json", "--json": str(tmp_path / "." / "m.json")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ModscopeError, match="not writable"):
            check_output(ro / "x.json", "--json")
    finally:
        ro.chmod(0o755)


def _no_work(monkeypatch):
    import modscope.scoring.engine as engine

    monkeypatch.setattr(engine, "score", lambda *a, **k: pytest.fail("the work started before the check"))


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--json", "{tmp}"], "is a directory"),
        (["--json", "{tmp}/missing/r.json"], "does not exist"),
        (["--cache", "{tmp}/net.pt"], "is not a directory"),
    ],
)
def test_score_checks_its_outputs_before_the_work(net, tmp_path, capsys, monkeypatch, flags, words):
    _no_work(monkeypatch)
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert main(["score", str(net), *SCORE, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_score_json_to_stdout_puts_the_table_on_stderr(net, capsys):
    assert main(["score", str(net), *SCORE, "--json", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["ncut"] >= 0
    assert "n-cut" in err


def test_train_refuses_one_file_for_two_outputs(tmp_path, capsys):
    out = tmp_path / "m.json"
    argv = ["train", "--task", "moons", "--steps", "2", "--out", str(out), "--json", str(out)]
    rc = main(argv)
    assert rc == 2
    assert "name the same file" in capsys.readouterr().err
    assert not out.exists()


def test_masks_refuses_a_folder_for_save_before_writing_json(tmp_path, capsys):
    json_out = tmp_path / "a.json"
    rc = main(["masks", str(tmp_path / "no.pt"), "--json", str(json_out), "--save", str(tmp_path)])
    assert rc == 2
    assert "is a directory" in capsys.readouterr().err
    assert not json_out.exists()


def test_report_on_a_malformed_result_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ncut": 0.5, "layer_widths": [2, 2], "shuffle": {"n": 2}, "labels": []}))
    out = tmp_path / "report"
    rc = main(["report", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert not out.exists()


def test_a_factory_calling_sys_exit_is_one_line(net, tmp_path, capsys, monkeypatch):
    (tmp_path / "exiting.py").write_text("import sys\n\ndef make():\n    sys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = main(["score", str(net), *SCORE, "--model", "exiting:make", "--input-shape", "1,5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "sys.exit(3)" in err[0]
    sys.modules.pop("exiting", None)


def test_tracing_failures_print_one_line_unless_verbose(tmp_path, capsys, monkeypatch):
    (tmp_path / "branchy.py").write_text(
        "import torch\n\n"
        "class Branchy(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(4, 2)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x) if x.sum() > 0 else -self.fc(x)\n\n"
        "def make():\n"
        "    return Branchy()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import branchy

    torch.save(branchy.make().state_dict(), tmp_path / "b.pt")
    argv = ["score", str(tmp_path / "b.pt"), *SCORE, "--model", "branchy:make", "--input-shape", "1,4"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot trace" in err[0], err
    assert main(["--verbose", *argv]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) > 1  # torch's own logs, on request
    sys.modules.pop("branchy", None)


def test_an_example_input_the_model_cannot_take_is_one_line(net, tmp_path, capsys, monkeypatch):
    (tmp_path / "plain.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), "
        "torch.nn.Linear(6, 3))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for extra, words in [(["--input-dtype", "long"], "does not run on the example input"),
                         (["--input-shape", "100000000000,8"], "memory budget"),
                         (["--input-shape", "1e11,8"], "comma-separated integers")]:
        argv = ["score", str(net), *SCORE, "--model", "plain:make", *extra]
        if "--input-shape" not in extra:
            argv += ["--input-shape", "1,5"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    sys.modules.pop("plain", None)
