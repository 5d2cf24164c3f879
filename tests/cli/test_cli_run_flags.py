"""knockout and masks share their flags and their run-time checks (`modscope.cli.options.run_flags`,
`run_checks`): the same --model group in both, and flags of the other mode refused in one line
before any work, naming the flag."""

from __future__ import annotations

import pytest

from modscope.cli import main


@pytest.mark.parametrize("command", ["knockout", "masks"])
def test_both_commands_have_the_shared_module_group(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag in ("--model", "--input-shape", "--non-strict", "--function", "--output", "--seed", "--device",
                 "--json", "--cache", "--no-progress"):
        assert flag in text, flag
    assert ("--batch-size" if command == "knockout" else "--eval-batch-size") in text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["knockout", "w.pt", "--ablation", "mean"], "--ablation go with --model"),
        (["knockout", "w.pt", "--output", "1"], "--output"),
        (["knockout", "w.pt", "--model", "a.b:c", "--data", "d.npz", "--masks", "m.pt"],
         "takes no --task or --masks"),
        (["masks", "w.pt", "--model", "a.b:c", "--data", "d.npz", "--functions", "x"],
         "--functions or --cache"),
        (["masks", "w.pt", "--model", "a.b:c"], "needs --data"),
        (["masks", "w.pt", "--input-axis", "-1"], "--input-axis goes with score --model"),
    ],
)
def test_flags_of_the_other_mode_are_refused_in_one_line(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--json", "out.json", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written
