"""Any ``nn.Module`` -> its unit graph, by following the real dataflow ([spec §1b][spec-1b]).

The module is exported with ``torch.export`` (its ATen graph, never decomposed: ``linear``, ``conv``,
``lstm``, ``layer_norm`` stay single ops) and interpreted node by node. Every tensor carries an
integer array of its own shape saying which *unit* each element belongs to (-1: none, e.g. a
constant or an attention score), the element's position in its unit's spatial frame, and a
per-element gain (LayerNorm / RMSNorm weights, parameter scalings) not yet folded into a layer:

- view ops (reshape, flatten, permute, transpose, slice, cat, split, expand, ...) apply the same
  operation to the unit array, so a Linear after a flatten reads each channel from the columns
  the model's code actually uses, channel-major or channel-last;
- weighted ops create a group of units (a Linear's neurons, a conv's output channels, an LSTM's
  hidden units) and a block of edges from the units they read: ``|W|``, or for the several
  weights joining two units (a conv kernel, a flattened channel's map, an LSTM's gate rows) the
  chosen norm over that slice (default numpy's matrix 1-norm, a vector's sum of |.|);
- a residual add, and an elementwise product of two unit tensors (SwiGLU's gate and up), make
  the units of the two operands one unit each (union-find): the stream is one set of units;
- ops without weights (activations, dropout, pooling, normalisation, softmax) carry unit
  identity; BatchNorm folds into the rows of the layer that produced its input, LayerNorm and
  RMSNorm gains into the columns of the layers that read them;
- attention: the scores ``q k^T`` carry no units, ``softmax(q k^T) v`` carries the value units,
  so queries and keys are dead ends and, like every unit that cannot reach an output, they are
  left out (``keep_dead_ends=True`` keeps them); token embeddings start the stream (input units).

Anything the interpreter cannot follow is refused with one line naming the op and its module.
"""

from ..norms import slice_norms
from .export import TracedNetwork, export_module, trace_graph, trace_network, trace_program
from .sites import Site

__all__ = [
    "Site",
    "TracedNetwork",
    "export_module",
    "slice_norms",
    "trace_graph",
    "trace_network",
    "trace_program",
]
