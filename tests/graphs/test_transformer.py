import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modscope.cli import main
from modscope.errors import ModscopeError
from modscope.graphs.transformer import mlp_blocks
from modscope.report.text import format_blocks
from modscope.scoring.blocks import score_blocks
from modscope.scoring.engine import score

D, FF = 8, 16


def _planted_block(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(W_in (FF, D), W_out (D, FF)) out x in, two modules: strong within, 1 % across."""
    def block(o, i):
        same = (np.arange(o) * 2 // o)[:, None] == (np.arange(i) * 2 // i)[None, :]
        return np.where(same, 1.0, 0.01) * rng.uniform(0.5, 1.5, (o, i)) * rng.choice([-1, 1], (o, i))
    return block(FF, D), block(D, FF)


def _gpt2_state_dict(n_blocks: int = 3, planted: tuple[int, ...] = (1,), seed: int = 0) -> dict:
    """A tiny GPT-2-like state dict: Conv1D weights stored in x out; blocks in `planted` modular."""
    rng = np.random.default_rng(seed)
    t = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    sd = {"transformer.wte.weight": t(rng.normal(size=(50, D))),
          "transformer.wpe.weight": t(rng.normal(size=(16, D)))}
    for i in range(n_blocks):
        p = f"transformer.h.{i}."
        dense = (rng.normal(size=(FF, D)), rng.normal(size=(D, FF)))
        w_in, w_out = _planted_block(rng) if i in planted else dense
        sd[p + "ln_1.weight"] = t(np.ones(D))
        sd[p + "attn.c_attn.weight"] = t(rng.normal(size=(D, 3 * D)))
        sd[p + "attn.c_proj.weight"] = t(rng.normal(size=(D, D)))
        sd[p + "mlp.c_fc.weight"] = t(w_in.T)  # Conv1D: in x out
        sd[p + "mlp.c_fc.bias"] = t(np.zeros(FF))
        sd[p + "mlp.c_proj.weight"] = t(w_out.T)
    return sd


def test_gpt2_blocks_are_read_in_order_and_transposed():
    sd = _gpt2_state_dict(n_blocks=11, planted=())
    blocks = mlp_blocks(sd)
    assert [b.name for b in blocks] == [f"transformer.h.{i}.mlp" for i in range(11)]  # h.10 after h.9
    b = blocks[10]
    assert (b.d_model, b.d_ff) == (D, FF)
    np.testing.assert_array_equal(b.w_in, sd["transformer.h.10.mlp.c_fc.weight"].double().numpy().T)
    np.testing.assert_array_equal(b.w_out, sd["transformer.h.10.mlp.c_proj.weight"].double().numpy().T)
    assert b.graph().layer_widths == (D, FF, D)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_fc1_fc2_files(tmp_path, suffix):
    rng = np.random.default_rng(1)
    sd = {}
    for i in range(2):
        sd[f"model.decoder.layers.{i}.self_attn.k_proj.weight"] = torch.randn(D, D, dtype=torch.float64)
        sd[f"model.decoder.layers.{i}.fc1.weight"] = torch.tensor(rng.normal(size=(FF, D)))
        sd[f"model.decoder.layers.{i}.fc2.weight"] = torch.tensor(rng.normal(size=(D, FF)))
    path = tmp_path / f"model{suffix}"
    save_file(sd, path) if suffix == ".safetensors" else torch.save(sd, path)
    blocks = mlp_blocks(path)
    assert [b.name for b in blocks] == ["model.decoder.layers.0", "model.decoder.layers.1"]
    # Linear weights are out x in already: not transposed
    np.testing.assert_array_equal(blocks[1].w_in, sd["model.decoder.layers.1.fc1.weight"].numpy())


def test_planted_block_stands_out_and_rows_equal_single_scores():
    sd = _gpt2_state_dict(n_blocks=3, planted=(1,))
    scores = score_blocks(sd, n_clusters=2, n_shuffles=10, seed=0)
    df = scores.to_frame()
    assert list(df.columns) == ["block", "d_model", "d_ff", "n_edges", "measure", "value",
                                "null_mean", "null_std", "z", "p_value"]
    assert df.loc[1, "z"] < -3 and df.loc[1, "p_value"] == pytest.approx(1 / 11)
    assert df.loc[1, "value"] < 0.1 < df.loc[0, "value"] and df.loc[1, "value"] < df.loc[2, "value"]
    alone = score(scores.blocks[1].graph(), n_clusters=2, n_shuffles=10, seed=0)
    assert alone.to_dict() == scores.results[1].to_dict()
    d = json.loads(json.dumps(scores.to_dict()))
    assert [b["block"] for b in d["blocks"]] == [f"transformer.h.{i}.mlp" for i in range(3)]
    assert "transformer.h.1.mlp" in format_blocks(scores)


@pytest.mark.igraph
def test_louvain_per_block():
    scores = score_blocks(_gpt2_state_dict(n_blocks=2, planted=(0,)), measure="louvain", n_shuffles=4)
    df = scores.to_frame()
    assert (df["measure"] == "modularity").all()
    assert df.loc[0, "value"] > 0.4 > df.loc[1, "value"]


def test_bad_transformer_inputs(tmp_path):
    with pytest.raises(ModscopeError, match="no transformer MLP blocks"):
        mlp_blocks({"fc.weight": torch.ones(3, 4)})
    with pytest.raises(ModscopeError, match="no matching"):
        mlp_blocks({"h.0.mlp.c_fc.weight": torch.ones(D, FF)})
    with pytest.raises(ModscopeError, match="d_model -> d_ff -> d_model"):
        mlp_blocks({"fc1.weight": torch.ones(FF, D), "fc2.weight": torch.ones(D, FF + 1)})

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.bin"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ModscopeError, match="refused"):
        mlp_blocks(path)


def test_cli_blocks(tmp_path, capsys):
    path = tmp_path / "gpt2.safetensors"
    save_file(_gpt2_state_dict(n_blocks=2, planted=(1,)), path)
    out = tmp_path / "blocks.json"
    rc = main(["blocks", str(path), "--clusters", "2", "--shuffles", "4", "--json", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 MLP blocks" in text and "transformer.h.1.mlp" in text
    assert len(json.loads(out.read_text())["blocks"]) == 2
    assert main(["blocks", str(tmp_path / "missing.bin")]) == 2
