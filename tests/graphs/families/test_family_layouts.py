"""What a checkpoint family declares (issue 23: one `Family` base for every family): its signature,
MLP names and tied weights are names of its own reference module, and `weights` spells keys."""

from __future__ import annotations

import pytest
from safetensors.numpy import load_file

from modscope.graphs.families import FAMILIES
from modscope.graphs.families.base import weights
from modscope.graphs.families.detect import match_family
from modscope.graphs.families.graph import read_config
from tests.helpers.paths import FIXTURES

torch = pytest.importorskip("torch")

DATA = FIXTURES / "families"
FIXTURES = sorted(p.name for p in DATA.iterdir() if (p / "model.safetensors").is_file())


def test_weights_spells_the_weight_keys_under_a_prefix():
    assert weights("h.0.", "ln_1", "attn.c_attn") == ("h.0.ln_1.weight", "h.0.attn.c_attn.weight")
    assert weights("") == ()


def test_every_family_is_matched_by_its_signature_alone():
    for family in FAMILIES:
        keys = {p + k for p in family.prefixes[:1] for k in family.signature}
        assert family.signature and match_family(keys) is family
        assert match_family(set(list(keys)[1:])) is not family  # one key short: not this family


@pytest.mark.parametrize("name", FIXTURES)
def test_declared_names_are_the_reference_modules_own(name):
    tensors = load_file(str(DATA / name / "model.safetensors"))
    family = match_family(tensors)
    config = family.config(tensors, read_config(DATA / name) or {})
    with torch.device("meta"):
        module = family.module(config)
    state = set(module.state_dict())
    prefix = family.prefix(tensors.keys())
    assert {prefix + k for k in family.signature} <= state
    modules = dict(module.named_modules())
    mlps = family.mlp_inputs(config)
    assert all(block in modules and layer in modules for block, layer in mlps)
    if family.mlp is not None:  # one MLP a layer
        assert len(mlps) == config["layers"] > 0
    for tied, to in family.ties(config).items():
        assert tied in state and to in state and tied not in tensors
