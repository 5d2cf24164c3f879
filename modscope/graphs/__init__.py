"""Networks as graphs of units: the graph type, safe readers for weight files, and the builders
that turn MLPs, CNNs, transformer MLP blocks and activation correlations into graphs ([spec §1][spec-1])."""

from .activations import ActivationGraph, activation_graph
from .load import load_graph, load_weights
from .network import Network, network
from .weight_graph import WeightGraph

__all__ = [
    "ActivationGraph",
    "Network",
    "WeightGraph",
    "activation_graph",
    "load_graph",
    "load_weights",
    "network",
]
