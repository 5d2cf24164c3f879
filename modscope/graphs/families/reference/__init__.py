"""Reference modules: modscope's own ``nn.Module`` of each known family, written from the
architectures' descriptions, whose parameter names equal the checkpoints' keys. They compute what
the real models compute between their weights (layers, norms, residual adds, which tensor each
attention reads); what carries no unit (masks, rotary tables, relative position biases, dropout)
is left out, because it cannot change the unit graph. Importing this package imports torch."""

__all__: list[str] = []
