"""What every known family is: key names that say it, sizes read off shapes, a reference module.

A `Family` reads a state dict *without its code*. It says whether the key names are its layout
(`Family.matches`), infers the sizes it needs from the tensors' shapes (`Family.config`, with
the few numbers no shape holds taken from the model's ``config.json``), builds a modscope-owned
**reference module** whose parameter names equal the checkpoint's keys (`Family.module`) and
gives it a small example input (`Family.example_input`). Tracing that module ([spec §1b][spec-1b]) gives
the graph tracing the real model would give: the reference computes what the real architecture
computes between its weights, and nothing that carries no unit (masks, rotary tables, relative
position biases) changes the graph.

No torch here: a family is recognised from key names and shapes alone; torch is imported when a
reference module is built.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ModscopeError
from ..weight_graph import WeightGraph

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "HEADS",
    "WAY_OUT",
    "Family",
    "FamilyGraph",
    "count_indices",
    "example_tokens",
    "first_prefix",
    "given_int",
    "read_head",
    "shape_of",
    "stack_sizes",
    "stack_words",
    "weights",
]

WAY_OUT = (
    "pass the module with an example input (load_graph(module, example_input=...); on the command "
    "line --model package.module:factory), or a .pt2 torch.export archive"
)


@dataclass(frozen=True)
class FamilyGraph:
    """A recognised checkpoint's unit graph and what it was read as.

    ``graph``: the traced reference module's `WeightGraph` (its ``reading`` names the family and
    sizes). ``family``: the family's ``name`` (``"bert"``, ``"llama"``, ...). ``config``: the sizes
    inferred (and numbers taken from ``config.json``). ``mlp_groups``: for transformers, the group
    index of every MLP hidden layer (``d_ff`` units), in layer order; ``mlp_names`` the name of
    each one's block (``"bert.encoder.layer.3"``, ``"model.layers.3.mlp"``).
    """

    graph: WeightGraph
    family: str
    config: dict[str, Any]
    mlp_groups: tuple[int, ...] = ()
    mlp_names: tuple[str, ...] = ()
    title: str = field(default="")

# a transformer's head, by the name its config gives it, in words
HEADS = {"base": "no head", "score": "sequence classifier", "lm": "LM head", "tied_lm": "tied LM head"}


def shape_of(tensors: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """The shape of ``tensors[key]`` (a numpy array or a torch tensor); a missing key is refused."""
    try:
        value = tensors[key]
    except KeyError:
        raise ModscopeError(
            f"{key}: missing, though the other keys are laid out as a family that has it: {WAY_OUT}"
        ) from None
    return tuple(int(s) for s in np.shape(value))


def weights(prefix: str, *modules: str) -> tuple[str, ...]:
    """The weight keys of ``modules`` under ``prefix``: ``weights("h.0.", "ln_1")`` is
    ``("h.0.ln_1.weight",)``."""
    return tuple(f"{prefix}{m}.weight" for m in modules)


def first_prefix(keys: Collection[str], prefixes: Collection[str], suffixes: Collection[str]) -> str | None:
    """The first of ``prefixes`` under which every one of ``suffixes`` is a key (None: none)."""
    return next((p for p in prefixes if all(p + s in keys for s in suffixes)), None)


def count_indices(keys: Collection[str], pattern: str) -> int:
    """How many consecutive indices ``0, 1, ...`` ``pattern`` (a regex with one ``(\\d+)`` group,
    matched at the start of a key) finds; a gap (``layer.0``, ``layer.2``) is refused."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in keys if (m := regex.match(k))}
    if not found:
        return 0
    n = max(found) + 1
    missing = sorted(set(range(n)) - found)
    if missing:
        where = pattern.replace("(\\d+)", str(missing[0])).replace("\\.", ".").strip("^.")
        raise ModscopeError(f"{where}: missing, though layers up to {n - 1} are present: {WAY_OUT}")
    return n


def example_tokens(vocab: int, positions: int | None = None, offset: int = 0) -> Any:
    """``(1, n)`` token ids below ``vocab``: four, or fewer when the position table is shorter."""
    import torch

    n = 4 if positions is None else max(1, min(4, positions - offset))
    return (torch.arange(n) % vocab).unsqueeze(0)


def stack_sizes(
    tensors: Mapping[str, Any], prefix: str, layers: str, embedding: str, d_ff: str, ff_axis: int = 0
) -> dict[str, Any]:
    """A transformer stack's sizes read off shapes: ``prefix``, ``layers`` (the consecutive
    indices after the regex ``layers``), ``d_model`` and ``vocab`` (the token ``embedding``'s
    shape), ``d_ff`` (axis ``ff_axis`` of the MLP's input weight ``d_ff``); keys below ``prefix``."""
    vocab, d = shape_of(tensors, prefix + embedding)
    return {
        "prefix": prefix, "layers": count_indices(tensors.keys(), rf"^{re.escape(prefix)}{layers}\.(\d+)\."),
        "d_model": d, "d_ff": shape_of(tensors, prefix + d_ff)[ff_axis], "vocab": vocab,
    }


def stack_words(config: Mapping[str, Any], heads: bool = True) -> str:
    """``"6 layers, d 768, d_ff 3072, 12 heads"``: a transformer stack's sizes in words (the heads
    when ``heads`` and the config knows them)."""
    text = f"{config['layers']} layers, d {config['d_model']}, d_ff {config['d_ff']}"
    return text + (f", {config['heads']} heads" if heads and config.get("heads") else "")


def read_head(
    tensors: Mapping[str, Any], bare: bool, saved: Collection[str] = ("lm_head.weight",)
) -> tuple[str, int | None] | None:
    """A decoder's head and its classes from the keys: none on a ``bare`` base model, a sequence
    classifier (``score``), an LM head saved under one of ``saved``, or None: not saved (tied, or
    missing: the family decides)."""
    keys = tensors.keys()
    if bare:
        return "base", None
    if "score.weight" in keys:
        return "score", shape_of(tensors, "score.weight")[0]
    return ("lm", None) if any(k in keys for k in saved) else None


def given_int(given: Mapping[str, Any], *names: str) -> int | None:
    """The first of ``names`` in ``given`` (the model's config.json or ``config=``) as an int."""
    for name in names:
        value = given.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ModscopeError(f"config {name}={value!r}: expected an integer")
        return int(value)
    return None


class Family:
    """One architecture family read from its key names (a subclass per family).

    Subclasses set ``name`` (short id), ``title`` (e.g. ``"Hugging Face BERT"``) and
    ``model_types`` (the Hugging Face ``model_type`` values of ``config.json`` read as this
    family; empty: ``config.json`` is not consulted for the type), and implement `config` (the
    other methods have defaults: `describe` words a transformer stack's sizes and head).
    A family is recognised by its characteristic keys: ``signature`` (the keys, without prefix)
    under one of ``prefixes`` (the wrappers they may sit under, ``""`` for bare). A transformer
    names its MLPs in ``mlp`` (block and input layer, formatted with ``{p}`` the prefix and ``{i}``
    the layer) and a tied LM head in ``tied`` (the parameter not saved, the one it is tied to).
    ``reference``: the module of `modscope.graphs.families.reference` holding the reference, its
    class for a checkpoint with a ``prefix`` (a model with its head) and for a bare one (`module`
    builds it; a family whose choice depends on more overrides `module`).
    """

    name: str = ""
    title: str = ""
    model_types: tuple[str, ...] = ()
    # keys that hold no parameter of the architecture (causal masks, rotary tables), dropped
    buffers: re.Pattern | None = None
    signature: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ("",)
    mlp: tuple[str, str] | None = None
    tied: tuple[str, str] | None = None
    reference: tuple[str, str, str] = ("", "", "")

    def matches(self, keys: Collection[str]) -> bool:
        """Whether the key names are this family's layout (names only, never shapes)."""
        return first_prefix(keys, self.prefixes, self.signature) is not None

    def prefix(self, keys: Collection[str]) -> str:
        """The wrapper the ``signature`` keys sit under (``""``: bare)."""
        return first_prefix(keys, self.prefixes, self.signature) or ""

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """The sizes the reference module needs, read off the shapes of ``tensors`` (and from
        ``given``, the model's ``config.json`` or ``config=``, the numbers no shape holds)."""
        raise NotImplementedError

    def module(self, config: Mapping[str, Any]) -> nn.Module:
        """The reference module; its ``state_dict()`` names equal the checkpoint's keys."""
        where, wrapped, bare = self.reference
        classes = importlib.import_module(f"{__package__}.reference.{where}")
        return getattr(classes, wrapped if config.get("prefix") else bare)(config)

    def example_input(self, config: Mapping[str, Any]) -> Any:
        """A small input (batch 1) every layer accepts: a tensor or a tuple of the forward's
        positional arguments. Default: token ids below ``vocab``, as many as the ``positions``
        after ``position_offset`` allow (a transformer over a vocabulary)."""
        return example_tokens(config["vocab"], config.get("positions"), config.get("position_offset", 0))

    def label(self, config: Mapping[str, Any]) -> str:
        """The family's name as the reading says it (default ``title``)."""
        return self.title

    def describe(self, config: Mapping[str, Any]) -> str:
        """The sizes in words, e.g. ``"6 layers, d 768, d_ff 3072, 12 heads, LM head"`` (default: a
        transformer stack's, `stack_words`, and its head, `HEADS`)."""
        return f"{stack_words(config)}, {HEADS[config['head']]}"

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """``{key: other names it is saved under}``: a tensor found under another name is read
        as ``key`` (tied copies, names of other library versions); copies beside ``key`` are
        dropped. Applied before `config`."""
        return {}

    def ties(self, config: Mapping[str, Any]) -> dict[str, str]:
        """``{parameter: the parameter it is tied to}`` for tied weights not saved on disk."""
        return dict([self.tied]) if self.tied and config.get("head") == "tied_lm" else {}

    def mlp_inputs(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """For transformers, ``(block name, module of the MLP's input layer)`` per MLP, in layer
        order (the input layer's module names the MLP's hidden group in the graph)."""
        if self.mlp is None:
            return []
        p = config.get("prefix", "")
        return [(self.mlp[0].format(p=p, i=i), self.mlp[1].format(p=p, i=i)) for i in range(config["layers"])]
