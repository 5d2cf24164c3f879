import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.metrics import adjusted_rand_score
from torch import nn

from modscope.clustering.spectral import cluster
from modscope.errors import ModscopeError
from modscope.graphs.cnn import channel_weights, conv_graph, kernel_norms, module_channel_weights
from modscope.graphs.load import load_graph
from modscope.nulls.shuffles import LayerShuffle
from modscope.scoring.engine import score


def _cnn(in_hw=(8, 8), seed=0) -> nn.Sequential:
    """2 -> 8 -> 6 channels, max-pool, flatten, Linear -> 4 units, weights from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    h, w = in_hw[0] // 2, in_hw[1] // 2
    net = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(6 * h * w, 4),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        bn = net[1]
        bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
        bn.running_mean.copy_(torch.randn(8, generator=g))
    return net.eval()


def _planted_cnn() -> tuple[nn.Sequential, np.ndarray]:
    """Channels in two groups; kernels between groups 100x weaker. Returns (net, node labels)."""
    net = _cnn()
    group = {2: np.arange(2) // 1, 8: np.arange(8) // 4, 6: np.arange(6) // 3, 4: np.arange(4) // 2}
    with torch.no_grad():
        for conv in (net[0], net[3]):
            o, i = conv.weight.shape[:2]
            same = group[o][:, None] == group[i][None, :]
            conv.weight.mul_(torch.tensor(np.where(same, 1.0, 0.01), dtype=torch.float32)[:, :, None, None])
        lin = net[7]
        same = group[4][:, None] == group[6][None, :]
        lin.weight.mul_(torch.tensor(np.repeat(np.where(same, 1.0, 0.01), 16, axis=1), dtype=torch.float32))
    return net, np.concatenate([group[2], group[8], group[6], group[4]])


@pytest.mark.parametrize("norm", ["1", "l1", "l2", "fro", "max"])
def test_kernel_norms_match_numpy_per_slice(norm):
    k = np.random.default_rng(0).normal(size=(3, 4, 3, 2))
    ord_ = {"1": 1, "l2": "fro", "fro": "fro"}
    got = kernel_norms(k, norm)
    for b in range(3):
        for a in range(4):
            if norm in ord_:
                want = np.linalg.norm(k[b, a], ord_[norm])
            elif norm == "l1":
                want = np.abs(k[b, a]).sum()
            else:
                want = np.abs(k[b, a]).max()
            assert got[b, a] == pytest.approx(want)


def test_kernel_norm_default_is_the_max_column_sum():
    k = np.zeros((1, 1, 3, 3))
    k[0, 0, :, 1] = [1.0, -2.0, 3.0]  # column sum 6
    k[0, 0, 0, :] += [4.0, 0.0, 0.0]  # column 0 sums 4, row sums would give 4 + 1 = 5
    assert kernel_norms(k)[0, 0] == 6.0
    with pytest.raises(ModscopeError, match="unknown kernel norm"):
        kernel_norms(k, "nuclear")


def test_an_unknown_kernel_norm_is_refused_whatever_the_network():
    """Before: refused for a conv, silently ignored for 2-D slices and plain Linear stacks."""
    from modscope.graphs.norms import slice_norms
    from modscope.graphs.tracing import trace_graph

    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    cases = [
        lambda: slice_norms(np.ones((2, 3)), "nuclear"),
        lambda: load_graph(mlp, kernel_norm="nuclear"),
        lambda: load_graph(mlp.state_dict(), kernel_norm="nuclear"),
        lambda: load_graph(mlp, example_input=torch.zeros(1, 3), kernel_norm="nuclear"),
        lambda: trace_graph(mlp, torch.zeros(1, 3), kernel_norm="nuclear"),
    ]
    for make in cases:
        with pytest.raises(ModscopeError, match="unknown kernel norm 'nuclear'; choose from 1, l1"):
            make()
    assert load_graph(mlp.state_dict(), kernel_norm="l2").sizes == (3, 4, 2)  # a known name: no kernel read
    np.testing.assert_array_equal(slice_norms(-np.ones((2, 3)), "max"), np.ones((2, 3)))


def test_channel_graph_layout_batchnorm_fold_and_transition():
    net = _cnn()
    graph = conv_graph(net, input_shape=(2, 8, 8))
    assert graph.layer_widths == (2, 8, 6, 4)
    # BatchNorm folded as torch folds it for inference
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(net[0], net[1])
    folded = kernel_norms(fused.weight.detach().double().numpy())
    np.testing.assert_allclose(graph.weights[0], folded, rtol=1e-5)
    conv2 = net[3].weight.detach().double().numpy()
    np.testing.assert_allclose(graph.weights[1], kernel_norms(conv2))
    # conv -> linear: the matrix 1-norm of each channel's 4 x 4 block of the Linear weights
    w = net[7].weight.detach().double().numpy()
    want = np.array([[np.linalg.norm(w[u, c * 16 : (c + 1) * 16].reshape(4, 4), 1) for c in range(6)]
                     for u in range(4)])
    np.testing.assert_allclose(graph.weights[2], want)


@pytest.mark.slow  # traces a CNN several ways
def test_state_dict_file_and_module_routes_agree(tmp_path):
    net = _cnn()
    from_module = conv_graph(net, input_shape=(2, 8, 8))
    sd = net.state_dict()
    torch.save(sd, tmp_path / "cnn.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "cnn.safetensors")
    for source in (sd, tmp_path / "cnn.pt", tmp_path / "cnn.safetensors"):
        g = conv_graph(source, flatten="channel_major", spatial=(4, 4))
        for a, b in zip(g.weights, from_module.weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    # load_graph (and so `modscope score`) reads CNNs as channel graphs too
    read = load_graph(tmp_path / "cnn.pt", flatten="channel_major", map_shape=(4, 4))
    for g in (load_graph(net, example_input=torch.zeros(1, 2, 8, 8)), read):
        assert g.layer_widths == (2, 8, 6, 4)
        for a, b in zip(g.weights, from_module.weights, strict=True):
            np.testing.assert_allclose(np.abs(a), b, rtol=1e-6)
    assert "BatchNorm eps 1e-05 (torch default, assumed)" in read.reading
    # a state dict says neither its flatten order nor its map's shape (spec §1b): refused, never guessed
    with pytest.raises(ModscopeError, match="flatten='channel_major'"):
        load_graph(tmp_path / "cnn.pt")
    with pytest.raises(ModscopeError, match="--map-shape"):
        load_graph(tmp_path / "cnn.pt", flatten="channel_major")
    with pytest.raises(ModscopeError, match="example_input"):  # a module: its map size from a trace
        load_graph(net)
    # norms that do not depend on the map's shape need none
    l2 = load_graph(tmp_path / "cnn.pt", flatten="channel_major", kernel_norm="l2")
    np.testing.assert_allclose(l2.weights[2], conv_graph(net, norm="l2", input_shape=(2, 8, 8)).weights[2])


def test_non_square_map_needs_its_shape():
    net = _cnn(in_hw=(8, 12))  # the Linear flattens a 4 x 6 map
    with pytest.raises(ModscopeError, match="spatial"):
        conv_graph(net.state_dict(), flatten="channel_major")
    by_pass = conv_graph(net, input_shape=(2, 8, 12))
    given = conv_graph(net.state_dict(), spatial=(4, 6), flatten="channel_major")
    np.testing.assert_allclose(given.weights[2], by_pass.weights[2], rtol=1e-6)
    # an l1 norm does not care about the map's shape
    l1 = conv_graph(net.state_dict(), norm="l1", spatial=(6, 4), flatten="channel_major").weights[2]
    w = np.abs(net[7].weight.detach().double().numpy()).reshape(4, 6, 24).sum(axis=2)
    np.testing.assert_allclose(l1, w, rtol=1e-6)


def test_grouped_conv_is_block_diagonal():
    net = nn.Sequential(nn.Conv2d(4, 6, 3), nn.Conv2d(6, 6, 1, groups=3))
    mats = module_channel_weights(net)
    assert mats[1][1].shape == (6, 6)
    block = np.kron(np.eye(3), np.ones((2, 2))) > 0
    assert (mats[1][1][~block] == 0).all() and (mats[1][1][block] > 0).all()
    from_sd = channel_weights(net.state_dict())  # groups inferred from the channel counts
    np.testing.assert_allclose(from_sd[1][1], mats[1][1], rtol=1e-6)


def test_layer_shuffle_of_norms_is_the_kernel_permutation():
    """`layer` on the derived matrix == permuting whole kernels, then taking norms."""
    k = np.random.default_rng(1).normal(size=(5, 3, 3, 3))
    norms = kernel_norms(k)
    shuffled = LayerShuffle().shuffle(norms, np.random.default_rng(7))
    perm = np.random.default_rng(7).permutation(15)
    kernels = k.reshape(15, 3, 3)[perm].reshape(5, 3, 3, 3)
    np.testing.assert_array_equal(shuffled, kernel_norms(kernels))


def test_planted_channel_groups_are_found_and_beat_shuffles():
    net, planted = _planted_cnn()
    graph = conv_graph(net, input_shape=(2, 8, 8))
    part = cluster(graph, 2, seed=0)
    assert adjusted_rand_score(planted, part.labels) == 1.0
    result = score(graph, n_clusters=2, n_shuffles=10, seed=0)
    assert result.null.z < -3 and result.null.p_value == pytest.approx(1 / 11)


def test_bad_cnn_inputs():
    with pytest.raises(ModscopeError, match="not a CNN"):
        channel_weights({"fc.weight": torch.ones(3, 4)})
    chain_break = {"a.weight": torch.ones(8, 3, 3, 3), "b.weight": torch.ones(4, 5, 3, 3)}
    with pytest.raises(ModscopeError, match="residual"):
        channel_weights(chain_break)
    bn_first = {"bn.weight": torch.ones(3), "bn.running_var": torch.ones(3),
                "bn.running_mean": torch.zeros(3), "c.weight": torch.ones(8, 3, 3, 3)}
    with pytest.raises(ModscopeError, match="BatchNorm"):
        channel_weights(bn_first)
    assert len(channel_weights(bn_first, fold_batchnorm=False)) == 1
    with pytest.raises(ModscopeError, match="multiple"):
        channel_weights({"c.weight": torch.ones(8, 3, 3, 3), "fc.weight": torch.ones(2, 12)})
    with pytest.raises(ModscopeError, match="forward pass"):
        conv_graph(_cnn(), input_shape=(3, 8, 8))


def test_cli_scores_a_cnn_file(tmp_path, capsys):
    from modscope.cli import main

    net, _ = _planted_cnn()
    path = tmp_path / "cnn.pt"
    torch.save(net.state_dict(), path)
    assert main(["score", str(path), "--clusters", "2", "--shuffles", "3", "--no-progress"]) == 2
    assert "--flatten" not in capsys.readouterr().err.splitlines()[0][:8]  # one line, no traceback
    flat = ["--flatten", "channel-major", "--map-shape", "4,4"]
    assert main(["score", str(path), "--clusters", "2", "--shuffles", "3", "--no-progress", *flat]) == 0
    out = capsys.readouterr().out
    assert "2-8-6-4" in out and "channel-major flatten" in out
    assert main(["score", str(path), "--clusters", "2", "--shuffles", "3", "--kernel-norm", "fro",
                 "--no-progress", *flat]) == 0
    assert "2-8-6-4" in capsys.readouterr().out
    mlp = tmp_path / "mlp.pt"
    torch.save({"fc.weight": torch.ones(3, 4), "fc2.weight": torch.ones(2, 3)}, mlp)
    assert main(["score", str(mlp), "--clusters", "2", "--kernel-norm", "l1", "--no-progress"]) == 2
    assert "not a CNN" in capsys.readouterr().err
