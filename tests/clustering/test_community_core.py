"""Leiden / Louvain run on igraph's C core without igraph's Python package (issue 30): the same
partitions as igraph's own ``Graph.community_*`` wrappers, and no matplotlib imported."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modscope.clustering import leiden, louvain
from modscope.graphs.weight_graph import WeightGraph
from modscope.runtime.seeds import int_seed

pytestmark = pytest.mark.igraph
ROOT = Path(__file__).resolve().parents[2]


def _graph() -> WeightGraph:
    rng = np.random.default_rng(1)
    return WeightGraph.from_weights([rng.normal(size=(8, 12)), rng.normal(size=(6, 8))])


@pytest.mark.parametrize("method", ["leiden", "louvain"])
def test_core_gives_the_partition_of_igraphs_own_wrapper(method):
    import igraph

    graph = _graph()
    found = (leiden if method == "leiden" else louvain)(graph, seed=5, resolution=0.8)
    nodes = np.flatnonzero(graph.active)
    index = np.full(graph.n_nodes, -1)
    index[nodes] = np.arange(nodes.size)
    u, v, w = graph.edges
    g = igraph.Graph(n=int(nodes.size), edges=list(zip(index[u].tolist(), index[v].tolist(), strict=True)))
    igraph.set_random_number_generator(random.Random(int_seed(5)))
    try:
        if method == "leiden":
            ref = g.community_leiden(objective_function="modularity", weights=w.tolist(), resolution=0.8,
                                     n_iterations=2)
        else:
            ref = g.community_multilevel(weights=w.tolist(), resolution=0.8)
    finally:
        igraph.set_random_number_generator(random)
    ours = found.labels[nodes]
    # the same partition (labels renumbered by size)
    pairs = set(zip(ours.tolist(), ref.membership, strict=True))
    assert len(pairs) == len(set(ours.tolist())) == len(set(ref.membership))
    assert found.modularity == pytest.approx(g.modularity(ref.membership, weights=w.tolist(),
                                                          resolution=0.8), abs=1e-9)


def test_leiden_does_not_import_matplotlib():
    code = (
        "import sys, numpy as np\n"
        "from modscope.clustering import leiden\n"
        "from modscope.graphs.weight_graph import WeightGraph\n"
        "leiden(WeightGraph.from_weights([np.ones((3, 4)), np.ones((2, 3))]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'igraph')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.stdout.strip() == "['igraph._igraph']"


def test_igraph_imported_after_the_core_still_works():
    code = (
        "import numpy as np\n"
        "from modscope.clustering import louvain\n"
        "from modscope.graphs.weight_graph import WeightGraph\n"
        "louvain(WeightGraph.from_weights([np.ones((3, 4)), np.ones((2, 3))]))\n"
        "import igraph\n"
        "g = igraph.Graph.Famous('Zachary')\n"
        "print(len(g.community_multilevel()) > 1, igraph.compare_communities([0, 0, 1], [0, 1, 1]) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("method", [leiden, louvain])
def test_a_negligible_unit_is_left_out_with_its_edges(method):
    """A unit whose edges are all negligible counts as isolated: label -1, and its edges are not
    handed to igraph (they were, as vertex -1, and igraph raised)."""
    rng = np.random.default_rng(2)
    w1, w2 = rng.normal(size=(8, 12)), rng.normal(size=(6, 8))
    w1[2], w2[:, 2] = 1e-300, 1e-300  # hidden unit 2: edges, none of them counting
    graph = WeightGraph.from_weights([w1, w2])
    hidden = graph.offsets[1] + 2
    assert not graph.active[hidden] and graph.degree[hidden] > 0
    found = method(graph, seed=0)
    assert found.labels[hidden] == -1
    assert (found.labels[np.flatnonzero(graph.active)] >= 0).all()
