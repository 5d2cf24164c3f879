"""modscope: is this trained network modular, how much more than chance, and which parts do which job?"""

__version__ = "0.2.0"

from .alignment import alignment
from .errors import ModscopeError
from .graph import WeightGraph
from .io import load_graph, load_weights
from .score import ScoreResult, score
from .spectral import Partition, SpectralClusterer, cluster, ncut

__all__ = [
    "ModscopeError",
    "alignment",
    "Partition",
    "ScoreResult",
    "SpectralClusterer",
    "WeightGraph",
    "__version__",
    "cluster",
    "load_graph",
    "load_weights",
    "ncut",
    "score",
]
