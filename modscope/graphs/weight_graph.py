"""Weights -> graph (spec §1): one node per neuron, |w| on the edges.

Nodes come in graph order: the input layer, the hidden layers, the output layer, each
in index order, so an MLP 784-256x4-10 has 1818 nodes. The edge between neuron ``j`` of
layer ``l-1`` and neuron ``k`` of layer ``l`` weighs ``|W_l[k, j]|`` (torch's out x in
layout). Biases are not edges; zero weights are no edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..errors import ModscopeError
from ..runtime.hashing import fingerprint_arrays
from ..runtime.memory import available_memory

__all__ = ["MAX_WEIGHT_ENTRIES", "WeightGraph", "check_build_memory"]

# A graph whose weights hold more entries than this is refused before anything is allocated.
MAX_WEIGHT_ENTRIES = 400_000_000


def check_build_memory(layer_widths: Sequence[int]) -> None:
    """Refuse, in one line, a network whose graph would not fit in the memory available now.

    Building the graph holds the loaded source, the float64 weights and their absolute values:
    three float64 words per weight.
    """
    w = np.asarray(layer_widths, dtype=np.int64)
    need, have = 8 * 3 * int((w[:-1] * w[1:]).sum()), available_memory()
    if need > have:
        widths = "-".join(str(int(x)) for x in layer_widths)
        raise ModscopeError(
            f"a {widths} network needs about {need / 2**30:.1f} GiB to build its graph, but only "
            f"{have / 2**30:.1f} GiB of memory is available"
        )


@dataclass(frozen=True, eq=False)
class WeightGraph:
    """A layered network as a weighted undirected graph.

    ``weights[l]`` is the signed ``(n_{l+1}, n_l)`` matrix between layers ``l`` and ``l+1``
    (float64); every modularity routine uses ``abs_weights``. ``names`` are the source
    tensors' names, for messages and reports.
    """

    weights: tuple[np.ndarray, ...]
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.weights:
            raise ModscopeError("a weight graph needs at least one weight matrix")
        for i, (a, b) in enumerate(zip(self.weights[:-1], self.weights[1:], strict=False)):
            if b.shape[1] != a.shape[0]:
                raise ModscopeError(
                    f"weight shapes do not chain: {self._name(i)} is {a.shape[0]}x{a.shape[1]} "
                    f"(out x in) but {self._name(i + 1)} takes {b.shape[1]} inputs"
                )
        if not self.names:
            object.__setattr__(self, "names", tuple(f"layer{i}" for i in range(len(self.weights))))

    def _name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"weight {i}"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_weights(cls, weights: Sequence[np.ndarray], names: Sequence[str] | None = None) -> WeightGraph:
        """Validate and copy ``weights`` (out x in each) into a graph."""
        names = tuple(names) if names is not None else tuple(f"layer{i}" for i in range(len(weights)))
        total = sum(int(np.prod(np.shape(w))) for w in weights)
        if total > MAX_WEIGHT_ENTRIES:
            raise ModscopeError(
                f"the network has {total:,} weights, above modscope's limit of "
                f"{MAX_WEIGHT_ENTRIES:,} for one graph"
            )
        checked = []
        for name, w in zip(names, weights, strict=True):
            a = np.asarray(w)
            if a.ndim != 2:
                raise ModscopeError(f"{name}: a weight matrix must be 2-D, got shape {a.shape}")
            if 0 in a.shape:
                raise ModscopeError(f"{name}: zero-width layer (shape {a.shape})")
            if not (np.issubdtype(a.dtype, np.floating)):
                raise ModscopeError(f"{name}: weights must be floating point, got dtype {a.dtype}")
            a = a.astype(np.float64)
            if not np.isfinite(a).all():
                raise ModscopeError(f"{name}: weights contain NaN or infinite values")
            if a.size and np.abs(a).max() * max(a.shape) > 1e300:  # a degree would overflow
                raise ModscopeError(
                    f"{name}: weights too large to sum without overflow (max |w| {np.abs(a).max():.3g})"
                )
            checked.append(a)
        return cls(tuple(checked), names)

    def with_weights(self, weights: Sequence[np.ndarray]) -> WeightGraph:
        """The same architecture with other weights (e.g. a shuffle); no re-validation."""
        return WeightGraph(tuple(weights), self.names)

    # -- layout ----------------------------------------------------------------------------
    @cached_property
    def layer_widths(self) -> tuple[int, ...]:
        return (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))

    @property
    def n_layers(self) -> int:
        """Number of neuron layers, input and output included."""
        return len(self.layer_widths)

    @cached_property
    def offsets(self) -> np.ndarray:
        """``offsets[l]`` is the graph index of layer ``l``'s first neuron; ``offsets[-1] == n_nodes``."""
        return np.concatenate([[0], np.cumsum(self.layer_widths)])

    @property
    def n_nodes(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def node_layer(self) -> np.ndarray:
        """``(n_nodes,)`` layer of each node."""
        return np.repeat(np.arange(self.n_layers), self.layer_widths)

    @cached_property
    def node_index(self) -> np.ndarray:
        """``(n_nodes,)`` index of each node within its layer."""
        return np.concatenate([np.arange(w) for w in self.layer_widths])

    # -- edges -----------------------------------------------------------------------------
    @cached_property
    def abs_weights(self) -> tuple[np.ndarray, ...]:
        return tuple(np.abs(w) for w in self.weights)

    @cached_property
    def n_edges(self) -> int:
        return int(sum(np.count_nonzero(w) for w in self.weights))

    @cached_property
    def degree(self) -> np.ndarray:
        """``(n_nodes,)`` weighted degree: the sum of |w| over each node's edges."""
        deg = np.zeros(self.n_nodes)
        for l, w in enumerate(self.abs_weights):
            deg[self.offsets[l] : self.offsets[l + 1]] += w.sum(axis=0)
            deg[self.offsets[l + 1] : self.offsets[l + 2]] += w.sum(axis=1)
        return deg

    @cached_property
    def active(self) -> np.ndarray:
        """``(n_nodes,)`` bool: nodes with at least one edge (degree-0 nodes are not clustered)."""
        return self.degree > 0

    @cached_property
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, w)``: each undirected edge once, ``u`` in the earlier layer, ``w = |W| > 0``."""
        us, vs, ws = [], [], []
        for l, w in enumerate(self.abs_weights):
            k, j = np.nonzero(w)
            us.append(self.offsets[l] + j)
            vs.append(self.offsets[l + 1] + k)
            ws.append(w[k, j])
        return np.concatenate(us), np.concatenate(vs), np.concatenate(ws)

    @cached_property
    def adjacency(self) -> sp.csr_matrix:
        """``(n_nodes, n_nodes)`` symmetric sparse adjacency of |w|."""
        u, v, w = self.edges
        n = self.n_nodes
        a = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([u, v]), np.concatenate([v, u]))), (n, n))
        return a.tocsr()

    def to_networkx(self):
        """A ``networkx.Graph`` with node attributes ``layer`` and ``index`` and edge ``weight``."""
        import networkx as nx

        g = nx.from_scipy_sparse_array(self.adjacency, edge_attribute="weight")
        nx.set_node_attributes(g, dict(enumerate(self.node_layer.tolist())), "layer")
        nx.set_node_attributes(g, dict(enumerate(self.node_index.tolist())), "index")
        return g

    def summary(self) -> dict:
        """``layer_widths``, ``n_nodes``, ``n_edges``: the graph's part of every result's JSON."""
        return {
            "layer_widths": list(self.layer_widths),
            "n_nodes": int(self.n_nodes),
            "n_edges": int(self.n_edges),
        }

    def cluster_sizes(self, labels: np.ndarray, n_clusters: int) -> np.ndarray:
        """``(n_layers, n_clusters)`` neurons of each cluster in each layer (-1 labels skipped)."""
        labels = np.asarray(labels)
        keep = labels >= 0
        out = np.zeros((self.n_layers, n_clusters), dtype=np.int64)
        np.add.at(out, (self.node_layer[keep], labels[keep]), 1)
        return out

    def fingerprint(self) -> str:
        """sha256 of the weights: what a cached result computed on this graph depends on."""
        return fingerprint_arrays(self.weights)

    def layer_slices(self) -> list[slice]:
        return [slice(int(self.offsets[l]), int(self.offsets[l + 1])) for l in range(self.n_layers)]

    def __repr__(self) -> str:
        widths = "-".join(map(str, self.layer_widths))
        return f"WeightGraph({widths}, nodes={self.n_nodes}, edges={self.n_edges})"
