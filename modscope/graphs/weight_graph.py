"""Weights -> graph ([spec §1][spec-1], [§1b][spec-1b]): one node per unit, |w| on the edges.

A graph is a sequence of **unit groups** (a layer's neurons, a conv's channels, a residual
stream, an attention block's value dimensions, a recurrent layer's hidden units) and **edge sets**,
one per weight matrix (the glossary of ARCHITECTURE.md; "block" means a transformer block only):
edge set ``b`` joins group ``links[b][0]`` (its source, ``n_src`` units) to group ``links[b][1]``
(its destination, ``n_dst``), with the signed ``(n_dst, n_src)`` matrix ``weights[b]``; the edge
between source unit ``j`` and destination unit ``k`` weighs ``|weights[b][k, j]|``. Several edge
sets may join the same two groups (their weights add up in the adjacency); an edge set may join a
group to itself (recurrent weights), its diagonal (self-loops) is dropped. Biases are not edges;
zero weights are no edges.

Nodes come in group order, each group in index order. The layered MLP of [spec §1][spec-1] is the special
case of a **chain**: group ``l`` is layer ``l`` and edge set ``l`` joins layers ``l`` and ``l + 1``, so
a 784-256x4-10 MLP has 1818 nodes in the order input, hidden, output; ``WeightGraph(weights)``
builds a chain from its matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..errors import ModscopeError
from ..runtime.hashing import fingerprint_arrays
from ..runtime.memory import available_memory

__all__ = ["MAX_WEIGHT_ENTRIES", "NEGLIGIBLE_ULPS", "WeightGraph", "check_build_memory"]

# A unit whose degree is below this many float64 epsilons times the edges and the total weight is
# numerically dead (spec §1b: "a small multiple of float64 machine epsilon times the number of edges").
NEGLIGIBLE_ULPS = 4
# A graph whose weights hold more entries than this is refused before anything is allocated.
MAX_WEIGHT_ENTRIES = 400_000_000


def check_build_memory(layer_widths: Sequence[int] | None = None, n_weights: int | None = None) -> None:
    """Refuse, in one line, a network whose graph would not fit in the memory available now.

    Building the graph holds the loaded source, the float64 weights and their absolute values:
    three float64 words per weight. Give a chain's ``layer_widths`` or the ``n_weights`` count.
    """
    if n_weights is None:
        w = np.asarray(layer_widths, dtype=np.int64)
        n_weights = int((w[:-1] * w[1:]).sum())
    need, have = 8 * 3 * int(n_weights), available_memory()
    if need > have:
        what = f"{n_weights:,}-weight" if layer_widths is None else "-".join(map(str, map(int, layer_widths)))
        raise ModscopeError(
            f"a {what} network needs about {need / 2**30:.1f} GiB to build its graph, but only "
            f"{have / 2**30:.1f} GiB of memory is available"
        )


def _drop_diagonals(weights: list[np.ndarray], edge_sets: Sequence[int]) -> None:
    """Zero the diagonal of each of ``edge_sets`` in ``weights`` (in place of the list: copies of the
    matrices, never the caller's arrays)."""
    for b in edge_sets:
        weights[b] = weights[b].copy()
        np.fill_diagonal(weights[b], 0.0)


@dataclass(frozen=True, eq=False)
class WeightGraph:
    """A network as a weighted undirected graph of unit groups joined by edge sets (one per
    weight matrix).

    ``weights[b]``: the signed ``(n_dst, n_src)`` float64 matrix of edge set ``b``; every modularity
    routine uses ``abs_weights``. ``names[b]``: the source tensor's name. ``links[b]``:
    ``(src group, dst group)`` (default: a chain, edge set ``b`` from group ``b`` to ``b + 1``).
    ``sizes[g]``: the units of group ``g`` (default: read off a chain's matrices);
    ``group_names[g]`` its name. ``reading``: how modscope read the network (traced, a known
    family, a plain stack in stored order, a detected layout), said with every result.
    """

    weights: tuple[np.ndarray, ...]
    names: tuple[str, ...] = field(default=())
    links: tuple[tuple[int, int], ...] = field(default=())
    sizes: tuple[int, ...] = field(default=())
    group_names: tuple[str, ...] = field(default=())
    reading: str = field(default="", compare=False)
    group_kinds: tuple[str, ...] = field(default=(), compare=False)  # a traced group's layer (Linear)

    def __post_init__(self) -> None:
        if not self.weights:
            raise ModscopeError("a weight graph needs at least one weight matrix")
        if not self.links:
            for i, (a, b) in enumerate(zip(self.weights[:-1], self.weights[1:], strict=False)):
                if b.shape[1] != a.shape[0]:
                    raise ModscopeError(
                        f"weight shapes do not chain: {self._name(i)} is {a.shape[0]}x{a.shape[1]} "
                        f"(out x in) but {self._name(i + 1)} takes {b.shape[1]} inputs"
                    )
            object.__setattr__(self, "links", tuple((i, i + 1) for i in range(len(self.weights))))
            object.__setattr__(
                self, "sizes", (int(self.weights[0].shape[1]), *(int(w.shape[0]) for w in self.weights))
            )
        if len(self.links) != len(self.weights):
            raise ModscopeError(f"{len(self.weights)} weight matrices but {len(self.links)} links")
        for b, ((src, dst), w) in enumerate(zip(self.links, self.weights, strict=True)):
            if not (0 <= src < len(self.sizes) and 0 <= dst < len(self.sizes)):
                raise ModscopeError(f"{self._name(b)}: links groups {src} -> {dst} of {len(self.sizes)}")
            if w.shape != (self.sizes[dst], self.sizes[src]):
                raise ModscopeError(
                    f"{self._name(b)}: shape {w.shape} but it joins groups of {self.sizes[src]} and "
                    f"{self.sizes[dst]} units ({self.sizes[dst]} x {self.sizes[src]} expected)"
                )
        if not self.names:
            object.__setattr__(self, "names", tuple(f"layer{i}" for i in range(len(self.weights))))
        if not self.group_names:
            object.__setattr__(self, "group_names", tuple(f"group{g}" for g in range(len(self.sizes))))

    def group_label(self, g: int) -> str:
        """Group ``g`` for a reader: its name, layer kind and size (``"0 (Linear, 32 units)"``)."""
        kind = self.group_kinds[g] if g < len(self.group_kinds) and self.group_kinds[g] != "input" else ""
        return f"{self.group_names[g]} ({kind + ', ' if kind else ''}{self.sizes[g]} units)"

    def _name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"weight {i}"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_weights(
        cls, weights: Sequence[np.ndarray], names: Sequence[str] | None = None, *,
        links: Sequence[tuple[int, int]] | None = None, sizes: Sequence[int] | None = None,
        group_names: Sequence[str] | None = None, reading: str = "", copy: bool = True,
    ) -> WeightGraph:
        """Validate and copy ``weights`` (out x in each) into a graph: a chain, or the groups of
        ``sizes`` joined as ``links`` says. Edge sets within one group lose their diagonal.
        ``copy=False`` keeps float64 arrays as they are (the caller hands them over: the tracer's
        edge sets), which saves a copy of every weight on big networks."""
        names = tuple(names) if names is not None else tuple(f"layer{i}" for i in range(len(weights)))
        if len(names) != len(weights):
            raise ModscopeError(f"{len(names)} names for {len(weights)} weight matrices: one name per matrix")
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
            a = a.astype(np.float64) if copy or a.dtype != np.float64 else a
            if not np.isfinite(a).all():
                raise ModscopeError(f"{name}: weights contain NaN or infinite values")
            peak = max(float(a.max()), -float(a.min()))  # no |a| copy; empty layers refused above
            if peak * max(a.shape) > 1e300:  # a degree would overflow
                raise ModscopeError(f"{name}: weights too large to sum without overflow (max |w| {peak:.3g})")
            checked.append(a)
        if links is None:
            return cls(tuple(checked), names, reading=reading)
        links = tuple((int(s), int(d)) for s, d in links)
        if len(links) != len(checked):
            raise ModscopeError(
                f"{len(links)} links for {len(checked)} weight matrices: give one (source group, "
                "destination group) per matrix"
            )
        # self-loops are dropped (spec §1b): recurrent weights join distinct units only
        _drop_diagonals(checked, [b for b, (s, d) in enumerate(links) if s == d])
        sizes = tuple(int(x) for x in sizes) if sizes is not None else ()
        group_names = tuple(group_names) if group_names is not None else ()
        return cls(tuple(checked), names, links, sizes, group_names, reading)

    def read_as(self, reading: str) -> WeightGraph:
        """The same graph, saying how it was read."""
        return replace(self, reading=reading)

    def with_weights(self, weights: Sequence[np.ndarray]) -> WeightGraph:
        """The same architecture with other weights (e.g. a shuffle); no re-validation beyond
        dropping the self-loops of edge sets within one group."""
        weights = list(weights)
        _drop_diagonals(weights, self.self_edge_sets)
        return replace(self, weights=tuple(weights))  # every other field kept, group_kinds included

    # -- layout ----------------------------------------------------------------------------
    @cached_property
    def is_chain(self) -> bool:
        """Whether the graph is layered: edge set ``l`` joins group ``l`` to group ``l + 1``."""
        return len(self.sizes) == len(self.weights) + 1 and all(
            link == (i, i + 1) for i, link in enumerate(self.links)
        )

    @cached_property
    def self_edge_sets(self) -> tuple[int, ...]:
        """Edge sets that join a group to itself (recurrent weights)."""
        return tuple(b for b, (s, d) in enumerate(self.links) if s == d)

    @property
    def self_blocks(self) -> tuple[int, ...]:
        """Deprecated name of `self_edge_sets` (0.3.0's "blocks" are edge sets)."""
        return self.self_edge_sets

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """Units per group (for a chain: per layer, input to output)."""
        return self.sizes

    @property
    def n_layers(self) -> int:
        """Number of groups (for a chain: layers, input and output included)."""
        return len(self.sizes)

    @cached_property
    def offsets(self) -> np.ndarray:
        """``offsets[g]`` is the node index of group ``g``'s first unit; ``offsets[-1] == n_nodes``."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def n_nodes(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def node_layer(self) -> np.ndarray:
        """``(n_nodes,)`` group of each node."""
        return np.repeat(np.arange(self.n_layers), self.sizes)

    @cached_property
    def node_index(self) -> np.ndarray:
        """``(n_nodes,)`` index of each node within its group."""
        return np.concatenate([np.arange(w) for w in self.sizes])

    def group_nodes(self, g: int) -> slice:
        """The node indices of group ``g``."""
        return slice(int(self.offsets[g]), int(self.offsets[g + 1]))

    def incident(self, g: int) -> list[tuple[int, bool]]:
        """``[(edge set, g_is_dst)]``: the edge sets with an end in group ``g``, and which end."""
        return [(b, d == g) for b, (s, d) in enumerate(self.links) if g in (s, d)]  # a self-loop once

    @cached_property
    def colours(self) -> np.ndarray | None:
        """A 2-colouring of the groups (``(n_groups,)`` of 0 / 1) in which every edge set joins two
        colours, or ``None`` when none exists (an edge set within a group, an odd cycle). The graph of
        units is then bipartite: colour-0 units against colour-1 units ([spec §1b][spec-1b]: detected, never
        assumed). Each connected set of groups starts at its lowest group with colour 0."""
        from scipy.sparse.csgraph import connected_components, shortest_path

        n = self.n_layers
        src, dst = np.asarray(self.links).T
        groups = sp.coo_matrix((np.ones(src.size), (src, dst)), (n, n))
        _, component = connected_components(groups, directed=False)
        starts = np.unique(component, return_index=True)[1]  # each component's lowest group
        # a 2-colouring, if any, is the parity of the hops from the start (the only one with start 0)
        hops = shortest_path(groups, directed=False, unweighted=True, indices=starts)
        colour = (hops[component, np.arange(n)] % 2).astype(np.int64)
        return None if np.any(colour[src] == colour[dst]) else colour

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
        for (s, d), w in zip(self.links, self.abs_weights, strict=True):
            deg[self.group_nodes(s)] += w.sum(axis=0)
            deg[self.group_nodes(d)] += w.sum(axis=1)
        return deg

    @cached_property
    def negligible_degree(self) -> float:
        """The degree below which a unit is numerically dead ([spec §1b][spec-1b]): ``4 * eps64 * n_edges *
        sum|w|``, the rounding bound of a float64 sum of the graph's edges. A unit that light is
        indistinguishable from zero in every degree, volume and cut (dead channels of ~1e-35 after
        training), but spectral clustering would give it a cluster of its own; the same rule holds
        for the network and every null sample."""
        return float(NEGLIGIBLE_ULPS * np.finfo(np.float64).eps * self.n_edges * self.degree.sum() / 2)

    @cached_property
    def active(self) -> np.ndarray:
        """``(n_nodes,)`` bool: nodes with edges whose degree is not below `negligible_degree`; the
        others are isolated and not clustered."""
        return (self.degree > 0) & (self.degree >= self.negligible_degree)

    @cached_property
    def n_negligible(self) -> int:
        """Units with edges, all of them so light that the units count as isolated."""
        return int(np.count_nonzero((self.degree > 0) & ~self.active))

    @cached_property
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, w)``: every edge of every edge set once, ``u`` at its source group, ``w = |W| > 0``
        (two edge sets joining the same units give two entries: their weights add up)."""
        us, vs, ws = [], [], []
        for (s, d), w in zip(self.links, self.abs_weights, strict=True):
            k, j = np.nonzero(w)
            us.append(self.offsets[s] + j)
            vs.append(self.offsets[d] + k)
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
        """A ``networkx.Graph`` with node attributes ``layer`` (the group) and ``index`` and edge
        ``weight`` (summed over edge sets)."""
        import networkx as nx

        g = nx.from_scipy_sparse_array(self.adjacency, edge_attribute="weight")
        nx.set_node_attributes(g, dict(enumerate(self.node_layer.tolist())), "layer")
        nx.set_node_attributes(g, dict(enumerate(self.node_index.tolist())), "index")
        return g

    def summary(self) -> dict:
        """``layer_widths``, ``n_nodes``, ``n_edges`` and ``reading`` (how the network was read):
        the graph's part of every result's JSON; a graph that is not a chain adds its ``groups``
        and its edge sets (under the key ``blocks``, as in 0.3.0's results)."""
        out = {
            "layer_widths": list(self.layer_widths), "n_nodes": self.n_nodes, "n_edges": self.n_edges,
            "reading": self.reading or "a WeightGraph given directly",
        }
        if self.n_negligible:  # said only when it happens: the readings of other graphs stay as they were
            out["reading"] += (
                f"; {self.n_negligible} numerically dead units (degree below 4 eps n_edges sum|w| = "
                f"{self.negligible_degree:.3g}) removed as isolated"
            )
            out["n_negligible"] = self.n_negligible
        if not self.is_chain:
            out["groups"] = [
                {"name": n, "units": int(s)} for n, s in zip(self.group_names, self.sizes, strict=True)
            ]
            out["blocks"] = [
                {"name": n, "from": int(s), "to": int(d)}
                for n, (s, d) in zip(self.names, self.links, strict=True)
            ]
        return out

    def cluster_sizes(self, labels: np.ndarray, n_clusters: int) -> np.ndarray:
        """``(n_groups, n_clusters)`` units of each cluster in each group (-1 labels skipped)."""
        labels = np.asarray(labels)
        keep = labels >= 0
        out = np.zeros((self.n_layers, n_clusters), dtype=np.int64)
        np.add.at(out, (self.node_layer[keep], labels[keep]), 1)
        return out

    def fingerprint(self) -> str:
        """sha256 of the weights and the structure: what a cached result on this graph depends on."""
        if self.is_chain:
            return fingerprint_arrays(self.weights)
        structure = np.asarray([*self.sizes, -1, *np.ravel(self.links)], dtype=np.int64)
        return fingerprint_arrays([structure, *self.weights])

    def __repr__(self) -> str:
        if self.is_chain:
            widths = "-".join(map(str, self.layer_widths))
            return f"WeightGraph({widths}, nodes={self.n_nodes}, edges={self.n_edges})"
        return (
            f"WeightGraph({len(self.sizes)} groups, {len(self.weights)} edge sets, nodes={self.n_nodes}, "
            f"edges={self.n_edges})"
        )
