"""bigaccel.save / bigaccel.load: round trips, no re-quantization, mismatches."""
import warnings

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune

import bigaccel
from bigaccel.nn import Int8Linear, Int8WeightOnlyLinear
from bigaccel.serialization import read_metadata

from .test_convert import mlp, small_llama, tokens


@pytest.mark.parametrize("recipe", [r for r in ("int8", "int8-weight-only", "int8+fuse-activations")
                                    if r.split("+")[-1] in bigaccel.recipes.available_recipes()])
def test_round_trip_gives_the_same_outputs_without_quantizing_again(recipe, tmp_path, monkeypatch):
    model = small_llama(tie_embeddings=True)
    bigaccel.convert(model, recipe, filter_fn=lambda m, name: not name.endswith("o_proj"))
    path = tmp_path / "model.safetensors"
    bigaccel.save(model, path)
    meta = read_metadata(path)
    assert meta["recipe"] == "+".join(reversed(recipe.split("+")))  # fusions run first
    assert meta["conversions"][-1]["options"]["min_weight_numel"] == 4096
    assert "model.layers.0.mlp.down_proj" in {layer["name"] for layer in meta["conversions"][-1]["layers"]}

    for cls in (Int8Linear, Int8WeightOnlyLinear):  # load must build structure only
        monkeypatch.setattr(cls, "from_linear", classmethod(lambda c, m: pytest.fail("quantized again")))
    fresh = small_llama(tie_embeddings=True, seed=7)  # other float weights: everything must come from the file
    assert bigaccel.load(fresh, path) is fresh
    assert [(n, type(m)) for n, m in fresh.named_modules()] == [(n, type(m)) for n, m in model.named_modules()]
    assert type(fresh.model.layers[0].self_attn.o_proj) is nn.Linear  # not converted, so not rebuilt
    assert fresh.lm_head.weight is fresh.model.embed_tokens.weight  # still tied
    x = tokens()
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    bigaccel.save(fresh, tmp_path / "again.safetensors")  # a loaded model saves the same record
    assert read_metadata(tmp_path / "again.safetensors")["conversions"] == meta["conversions"]


def test_pruned_and_quantize_dynamic_sources_load_into_plain_float_models(tmp_path):
    pruned = mlp()
    prune.l1_unstructured(pruned[0], "weight", amount=0.5)
    bigaccel.convert(pruned, "int8")
    bigaccel.save(pruned, tmp_path / "pruned.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
        dynamic = quantize_dynamic(mlp(), {nn.Linear}, dtype=torch.qint8)
    bigaccel.convert(dynamic, "int8")
    bigaccel.save(dynamic, tmp_path / "dynamic.safetensors")
    x = torch.randn(4, 64)
    for source, name in ((pruned, "pruned"), (dynamic, "dynamic")):
        fresh = bigaccel.load(mlp(seed=3), tmp_path / f"{name}.safetensors")
        assert isinstance(fresh[0], Int8Linear)
        assert torch.equal(fresh(x), source(x)), name


def test_a_mismatching_model_gets_an_error_naming_the_first_mismatch(tmp_path):
    model = small_llama()
    bigaccel.convert(model, "int8")
    path = tmp_path / "model.safetensors"
    bigaccel.save(model, path)

    wider = small_llama(intermediate=192)
    before = [(n, id(m)) for n, m in wider.named_modules()]
    with pytest.raises(bigaccel.CheckpointMismatchError,
                       match=r"'model.layers.0.mlp.gate_proj.weight' is int8 \[192, 64\] in the model "
                             r"but int8 \[128, 64\] in the checkpoint"):
        bigaccel.load(wider, path)
    assert [(n, id(m)) for n, m in wider.named_modules()] == before  # left as it was
    assert not hasattr(wider, "_bigaccel_conversions")

    with pytest.raises(bigaccel.CheckpointMismatchError, match=r"has no module 'model.layers.1.self_attn.q_proj'"):
        bigaccel.load(small_llama(layers=1), path)

    converted = small_llama()
    bigaccel.convert(converted, "int8")
    with pytest.raises(bigaccel.CheckpointMismatchError, match="freshly built float model"):
        bigaccel.load(converted, path)

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(bigaccel.CheckpointMismatchError, match="not a bigaccel checkpoint"):
        bigaccel.load(small_llama(), tmp_path / "plain.safetensors")
