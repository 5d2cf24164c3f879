"""Recurrent layers: LSTM / GRU / RNN (one op per stack) and their cells; each unit's stacked gate
rows are one slice, hidden-to-hidden weights a block inside the unit set."""

from __future__ import annotations

from functools import partialmethod

import numpy as np

from ..norms import slice_norms
from .unit_table import UnitTensor, carries_units, module_of

__all__ = ["RecurrentOps"]


class RecurrentOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def gate_rows(self, w: np.ndarray, gates: int) -> np.ndarray:
        """``(gates * h, n)`` -> ``(h, n)``: the norm of each unit's slice of stacked gate rows
        (i, f, g, o / r, z, n), as for a kernel (the default 1-norm sums |.| over the gates)."""
        h = w.shape[0] // gates
        return slice_norms(w.reshape(gates, h, w.shape[1]).transpose(1, 2, 0), self.norm)

    def gated_read(self, node, x: UnitTensor, w: UnitTensor, gates: int) -> tuple[np.ndarray, ...]:
        """``x``'s units along its last axis read through parameter ``w``'s stacked gate rows: the
        unit of each feature (-1: none), which features are units, and ``(h, n_read)`` the gate-row
        norms of the read features' columns times their carried ``|gain|``."""
        src, _, scale, _ = self.features(node, x, -1)
        read = src >= 0
        return src, read, self.gate_rows(self.param_value(w), gates)[:, read] * np.abs(scale[read])[None, :]

    def hidden_block(self, node, units: np.ndarray, w: UnitTensor, gates: int) -> int:
        """The hidden-to-hidden edges of the recurrent weights ``w`` among ``units``, a read inside
        the module (no hook reaches it); returns the block's index."""
        self.reads.append((node, None, -1, units.copy(), w.param[0], 1))
        return self.builder.add_block(w.param[0], units, units, self.gate_rows(self.param_value(w), gates))

    def initial_state(self, node, states, slot: int, units: np.ndarray, w_hh, gates: int) -> None:
        """Edges from the units that computed the initial state (``h0``, ``c0``: an encoder's last
        state, a Linear of a context vector) into layer-direction ``slot``'s hidden ``units``, by the
        recurrent weights' slice norms, as the hidden-to-hidden edges of the first step. An LSTM's
        ``c0`` made by the same units as its ``h0`` (an encoder's final state) adds no second block."""
        seen: list[np.ndarray] = []
        for state in states:
            if not carries_units(state) or state.units.ndim != 3:
                continue
            src, read, w = self.gated_read(node, state.map(lambda a, slot=slot: a[slot]), w_hh, gates)
            if not read.any() or any(np.array_equal(src, other) for other in seen):
                continue
            seen.append(src)
            uniq, inverse = np.unique(src[read], return_inverse=True)
            weight = np.zeros((units.size, uniq.size))
            np.add.at(weight.T, inverse, w.T)
            self.builder.add_block(w_hh.param[0], uniq, units, weight)
            # w_hh's columns read the state's features (masks count them); no hook reaches a state
            # slot inside the module, so lesions of these units there are refused (`sites`)
            self.state_reads.add(len(self.reads))
            self.reads.append((node, None, -1, src.copy(), w_hh.param[0], 1))

    def recurrent(
        self, gates, node, x, states, params, has_biases, num_layers, dropout, train, bidirectional,
        batch_first,
    ):
        """An ``nn.LSTM`` / ``GRU`` / ``RNN`` op (``gates`` rows per hidden unit: 4, 3, 1): a group
        of hidden units per layer and direction; ``states``: its initial state tensors. Returns the
        output sequence and the final state, ``(layers x directions, batch, hidden)``."""
        name = module_of(params[0].param[0]) if "." in params[0].param[0] else "rnn"
        per = 4 if has_biases else 2
        dirs = 2 if bidirectional else 1
        shape = self.shape(node)
        feature = x
        finals = []
        for layer in range(num_layers):
            for d in range(dirs):
                w_ih, w_hh = params[(layer * dirs + d) * per : (layer * dirs + d) * per + 2]
                h = self.param_value(w_hh).shape[1]
                suffix = f"l{layer}" + ("_reverse" if d else "")
                ih = self.gate_rows(self.param_value(w_ih), gates)
                units, _ = self.weighted(node, f"{name}.hidden_{suffix}", feature, -1, ih, h, w_ih.param[0])
                self.hidden_block(node, units, w_hh, gates)
                self.initial_state(node, states, layer * dirs + d, units, w_hh, gates)
                finals.append(units)
            layer_units = np.concatenate(finals[-dirs:])
            seq = shape if layer == num_layers - 1 else (*shape[:-1], layer_units.size)
            feature = self.spread(layer_units, tuple(seq), len(seq) - 1)
        h_shape = (len(finals), shape[0] if batch_first else shape[1], finals[0].size)
        state = np.stack([np.broadcast_to(u, h_shape[1:]) for u in finals])
        return feature, UnitTensor(state.copy(), np.zeros(h_shape, dtype=np.int64), ())

    def op_lstm(self, node, x, hx, *args, **kwargs):
        out, state = self.recurrent(4, node, x, list(hx or ()), *args, **kwargs)
        return [out, state, state]

    def one_state(self, gates, node, x, hx, *args, **kwargs):
        """A GRU / RNN op (one state tensor, ``hx``): its output sequence and final state."""
        return list(self.recurrent(gates, node, x, [hx], *args, **kwargs))

    op_gru = partialmethod(one_state, 3)
    op_rnn_tanh = op_rnn_relu = partialmethod(one_state, 1)

    def cell(self, node, x, h, w_ih, w_hh, gates) -> UnitTensor:
        shape = self.shape(node)
        if carries_units(h):  # the state carries the cell's units on
            units, _, _, _ = self.features(node, h, -1)
            src, read, w = self.gated_read(node, x, w_ih, gates)
            src, w = np.sort(src[read]), w[:, np.argsort(src[read], kind="stable")]
            key = (w_ih.param[0], tuple(src.tolist()), int(units[0]))
            if key not in self.builder.block_keys:  # one block for every step of a loop
                self.builder.block_keys[key] = self.builder.add_block(w_ih.param[0], src, units, w)
            block = self.builder.block_keys[key]
        else:
            ih = self.gate_rows(self.param_value(w_ih), gates)
            units, block = self.weighted(
                node, module_of(w_ih.param[0]), x, -1, ih, self.param_value(w_hh).shape[1], w_ih.param[0]
            )
            src = self.builder.blocks[block].src
            self.builder.block_keys[(w_ih.param[0], tuple(src.tolist()), int(units[0]))] = block
        key = (w_hh.param[0], int(units[0]))
        if key not in self.builder.block_keys:  # the same recurrent weights on the same units: once
            self.builder.block_keys[key] = self.hidden_block(node, units, w_hh, gates)
        return self.spread(units, shape, len(shape) - 1, block)

    def op_lstm_cell(self, node, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        out = self.cell(node, x, hx[0] if isinstance(hx, list | tuple) else hx, w_ih, w_hh, 4)
        return [out, out]

    def op_gru_cell(self, node, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        return self.cell(node, x, hx, w_ih, w_hh, 3)
