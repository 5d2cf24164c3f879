"""The demo split into named stages (issue 23): a rerun served from the cache says so per model,
and the result's notes stay what the demo left out (they were once overwritten by the last
model's "... cached" list, which then showed in the report under "Left out")."""

from __future__ import annotations

from modscope.workflows import demo


def test_a_cached_rerun_keeps_the_left_out_notes_and_logs_each_cached_stage(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "fashion_available", lambda *a: False)
    run = demo.DemoRun("tiny", "digits", {"steps": 20, "hidden": [8, 8]}, 2, pairs=False)
    monkeypatch.setattr(demo, "demo_runs", lambda quick, fashion=None: [run])
    kwargs = dict(worked=(), settings=demo.DemoSettings(3, 10, 20), progress=False)
    first = demo.run_demo(tmp_path, log=lambda _: None, **kwargs)
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts}
    logs: list[str] = []
    again = demo.run_demo(tmp_path, log=logs.append, **kwargs)
    for path, data in written.items():  # a rerun from the cache writes the same files, byte for byte
        assert path.read_bytes() == data, path.relative_to(tmp_path)
    note = demo.left_out_note(asked=False)
    assert first.notes == again.notes == [note]
    assert logs[0] == f"note: {note}"
    line = next(x for x in logs if x.startswith("tiny"))
    assert "(model cached, score cached, knockout cached)" in line
    assert again.rows == first.rows and again.knockouts == first.knockouts
    assert "model cached" not in again.report.read_text()
