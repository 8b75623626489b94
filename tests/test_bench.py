"""The benchmark harness's pieces at toy sizes: cases build and run, the roofline
verdicts and speedups follow from their definitions, results render and round-trip,
and the end-to-end decoder's KV cache reproduces the full forward. No timing
assertions: numbers at these sizes mean nothing."""
from __future__ import annotations

import json
import os

import pytest
import torch

import bigaccel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not os.path.isfile(os.path.join(ROOT, "bench", "runner.py")):  # e.g. the wheel check runs tests/ alone
    pytest.skip("bench/ is in the source tree only", allow_module_level=True)

from bench import cases as cases_pkg  # noqa: E402
from bench import e2e, machine, report, runner, timing  # noqa: E402
from bench.case import Case, Row, add_speedups  # noqa: E402
from bench.cases import BenchConfig  # noqa: E402
from bench.limits import Limits, raise_to_observed  # noqa: E402
from bench.timing import Rotation, copies_to_exceed_cache, cpu_llc_bytes, measure  # noqa: E402

# Made-up limits: 10 GB/s and 1/0.5/2 TFLOP/s, so the ridge points are 100/100/200 FLOP per byte.
LIMITS = Limits("cpu", 1, 10.0, 8.0, {"fp32": 1.0, "bf16": 0.5, "int8": 2.0})


def test_roofline_verdict_follows_the_ridge_point():
    # 1e9 FLOP over 1e8 bytes (10 FLOP/byte < 100): bandwidth-bound; 1e8 bytes in 0.02 s = 5 GB/s = 50 %.
    low = LIMITS.judge(1e9, 1e8, 0.02, "fp32")
    assert low["bound"] == "bandwidth" and low["pct_limit"] == pytest.approx(50.0)
    # 1e12 FLOP over 1e8 bytes (1e4 FLOP/byte): compute-bound; 1e12 FLOP in 2 s = 0.5 TFLOP/s = 25 % of int8.
    high = LIMITS.judge(1e12, 1e8, 2.0, "int8")
    assert high["bound"] == "compute" and high["pct_limit"] == pytest.approx(25.0)
    # bf16's limit is never below fp32's (a bf16 kernel may widen to fp32).
    assert LIMITS.compute_peak("bf16") == 1.0


def test_rotation_cycles_and_copies_exceed_the_cache():
    seen = []
    rot = Rotation(seen.append, [(i,) for i in range(3)])
    for _ in range(7):
        rot()
    assert seen == [0, 1, 2, 0, 1, 2, 0]
    per_copy = 5 * 2**20
    assert copies_to_exceed_cache(per_copy, "cpu") * per_copy >= 8 * cpu_llc_bytes()
    assert copies_to_exceed_cache(10 * cpu_llc_bytes(), "cpu") == 1
    t = measure(lambda: sum(range(100)), "cpu", budget_s=0.001, min_reps=4)
    assert t.reps >= 4 and 0 < t.min_s <= t.median_s


def test_every_family_runs_at_toy_size_and_renders(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "MAX_COPIES", 2)
    cfg = BenchConfig(device="cpu", toy=True)
    rows = []
    for name, module in cases_pkg.families().items():
        family_cases = module.cases(cfg)
        assert family_cases or cases_pkg.notes(module, cfg), f"{name} has neither cases nor a note saying why"
        rows += [runner.run_case(case, LIMITS, budget_s=0.0) for case in family_cases]
    assert not [r.skipped for r in rows if r.error]
    add_speedups(rows)
    measured = [r for r in rows if r.skipped is None]
    assert any(r.case.family == "int8_linear" and r.case.op == "W8A8" and r.case.impl == "bigaccel" for r in measured)
    times = {(r.case.group, r.case.name): r.time_s for r in measured}
    for r in measured:
        for base, s in r.speedup.items():
            assert s == pytest.approx(times[(r.case.group, base)] / r.time_s)
        assert set(r.speedup) <= set(r.case.baselines)
    results = {"limits": LIMITS.as_dict(), "rows": [r.as_dict() for r in rows]}
    raise_to_observed(results)
    for r in results["rows"]:  # after raising, no baseline is above its limit
        if "skipped" not in r and r["impl"] != "bigaccel":
            assert r["pct_limit"] <= 100.0 + 1e-6, r
    ids = [r.case.id for r in rows]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    results = {"machine": machine.describe("cpu"), "options": {"quick": True, "threads": 1, "ops": []},
               "limits": LIMITS.as_dict(), "notes": {}, "rows": [r.as_dict() for r in rows], "e2e": [], "seconds": 0.0}
    path = runner.save_json(results, str(tmp_path / "r.json"))
    loaded = json.load(open(path))
    assert "W8A8" in runner.format_table(loaded)
    md = report.tables(loaded, path)
    assert "| int8_linear | W8A8 | fp32 | 48×64 | F.linear fp32 |" in md


def test_a_broken_case_is_reported_not_fatal():
    def setup():
        raise RuntimeError("CUDA error: an illegal memory access\nmore lines")

    case = Case("int8_linear", "W8A8", "bigaccel", "fp32", "8x8", 1, 1.0, 1.0, "int8", setup)
    row = runner.run_case(case, LIMITS, budget_s=0.0)
    assert row.error and row.skipped == "error: RuntimeError: CUDA error: an illegal memory access"
    assert row.as_dict()["error"] is True


def test_kv_cached_decode_matches_the_full_forward():
    model = e2e.build("toy", torch.float32, "cpu")
    tokens = torch.randint(0, model.config.vocab, (2, 5))
    decoder = e2e.Decoder(model, 2, 5, torch.float32, "cpu")
    for pos in range(5):
        last = decoder.logits(tokens[:, pos: pos + 1], pos)
    with torch.no_grad():
        full = model(tokens)[:, -1:]
    torch.testing.assert_close(last, full, rtol=1e-4, atol=1e-5)


def test_e2e_rows_carry_speedups_over_the_float_model():
    rows = e2e.run("toy", "cpu", {"fp32": torch.float32}, quick=True, log=lambda s: None)
    measured = [r for r in rows if "tokens_per_s" in r]
    assert {r["recipe"] for r in measured} >= {"float", "int8"}
    for r in measured:
        base = next(b for b in measured if b["recipe"] == "float" and b["batch"] == r["batch"])
        assert r["speedup"]["float fp32"] == pytest.approx(r["tokens_per_s"] / base["tokens_per_s"])


def test_report_shows_each_family_from_the_newest_run_that_measured_it(tmp_path):
    def write(name, date, fams, gpu=None):
        rows = [{"family": f, "skipped": "x", "name": f} for f in fams]
        (tmp_path / name).write_text(json.dumps({"machine": {"cpu": "X", "gpu": gpu, "date": date}, "rows": rows}))

    write("old.json", "2026-01-01", ["int8_linear", "activations"])
    write("new.json", "2026-02-01", ["activations"])
    write("gpu.json", "2026-01-15", ["int8_linear"], gpu={"name": "G"})
    chosen = {os.path.basename(p): fams for p, fams in report.newest_results(str(tmp_path))}
    assert chosen == {"old.json": {"int8_linear"}, "new.json": {"activations"}, "gpu.json": {"int8_linear"}}
    write("gpu2.json", "2026-01-20", ["activations"], gpu={"name": "G2"})
    chosen = {os.path.basename(p): fams for p, fams in report.newest_results(str(tmp_path), newest_machine_only=True)}
    assert chosen == {"old.json": {"int8_linear"}, "new.json": {"activations"}, "gpu2.json": {"activations"}}


def test_one_cpu_model_with_different_isas_is_two_machines(tmp_path):
    def write(name, date, isa):
        described = {"cpu": "AMD EPYC", "isa_in_use": isa, "threads_used": 2, "gpu": None, "date": date}
        (tmp_path / name).write_text(json.dumps({"machine": described,
                                                 "rows": [{"family": "int8_linear", "skipped": "x"}]}))
        return described

    assert machine.slug(write("avx2.json", "2026-01-01", "avx2")) == "amd-epyc-avx2-2t"
    assert machine.slug(write("avx512.json", "2026-01-02", "avx512")) == "amd-epyc-avx512-2t"
    assert {os.path.basename(p) for p, _ in report.newest_results(str(tmp_path))} == {"avx2.json", "avx512.json"}
    newest = report.newest_results(str(tmp_path), newest_machine_only=True)
    assert [os.path.basename(p) for p, _ in newest] == ["avx512.json"]


def test_readme_summary_keeps_the_llama_up_projection_and_int4_group_128():
    def row(family, shape, op="W8A8"):
        return {"family": family, "shape": shape, "op": op}

    assert report.in_summary(row("int8_linear", "11008x4096"))
    assert not report.in_summary(row("int8_linear", "4096x4096"))
    assert report.in_summary(row("int4_linear", "11008x4096", "W4A16 g128"))
    assert not report.in_summary(row("int4_linear", "11008x4096", "W4A16 g32"))
    assert report.in_summary(row("activations", "22016", "silu_and_mul"))
    assert report.in_summary(row("mlp", "1024x2816", "int8"))


def test_models_choose_the_linear_shapes():
    cfg = BenchConfig(device="cpu", models=("13b", "small"))
    assert cfg.linear_shapes == [(5120, 5120), (13824, 5120), (5120, 13824), (2048, 2048), (5632, 2048), (2048, 5632)]
    assert BenchConfig(device="cpu").linear_shapes == [(4096, 4096), (11008, 4096), (4096, 11008)]
    assert BenchConfig(device="cpu", quick=True, models=("13b",)).linear_shapes == [(2048, 2048)]
    for name, module in cases_pkg.families().items():
        if name.endswith("_linear"):
            assert {c.shape for c in module.cases(cfg)} >= {"5120x5120", "2048x5632"}, name
    from types import SimpleNamespace
    bad = SimpleNamespace(op=[], quick=True, threads=None, e2e_model=None, budget=None, models="7b,70b", json=None,
                          save=False, plot=None)
    assert runner.main_from_cli(bad) == 2


def test_mlp_bytes_count_each_recipes_packed_weights():
    """The MLP rows' bandwidth percent counts the bytes the converted block reads, not the
    float block's: exactly the state dict's weight bytes of a converted block, per element."""
    from bench.cases import mlp
    from bigaccel.models import GatedMLP

    hidden, inter = 256, 384
    for recipe in ["int8", "int8-weight-only", "int4", "int4-g32", "sparse24", "sparse24-int8",
                   "int4+fuse-activations", None]:
        block = GatedMLP(hidden, inter).eval()
        if recipe is not None:
            if recipe.startswith("sparse24"):
                bigaccel.sparsity.prune_model(block)
            bigaccel.convert(block, recipe)
        # Per-row scales and biases (1-D) are O(N), not O(N K): left out of both counts.
        held = sum(t.numel() * t.element_size() for t in block.state_dict().values() if t.dim() == 2)
        expected = mlp.weight_bytes_per_element(recipe, "fp32") * 3 * hidden * inter
        assert held == pytest.approx(expected, rel=1e-6), (recipe, held, expected)


def test_no_bigaccel_row_raises_a_limit():
    """Peaks are raised only by baselines: a bigaccel row above the peak ("bigaccel then
    F.gelu" is one of ours too) shows as above 100%, it does not move the limit."""
    limits = Limits("cpu", 1, read_gbs=10.0, copy_gbs=10.0, peak_tflops={"fp32": 1.0, "bf16": 1.0, "int8": 1.0})
    flops, nbytes = 4e12, 1e6  # compute-bound: 4 TFLOP/s in 1 s
    rows = [{"id": impl, "impl": impl, "compute": "int8", "flops": flops, "bytes": nbytes, "time_us": 1e6,
             "tflops": 4.0} for impl in ("bigaccel", "bigaccel then F.gelu")]
    results = {"limits": limits.as_dict(), "rows": rows}
    raise_to_observed(results)
    assert results["limits"]["peak_tflops"]["int8"] == 1.0 and results["limits"]["raised_by"] == {}
    assert all(r["pct_limit"] == pytest.approx(400.0) for r in results["rows"])


def test_cpu_peaks_come_from_the_vector_units():
    """bigaccel._C.peak_tops measures the active tier's instructions; measure_limits takes it
    where it beats torch's GEMMs (never below them) and says so in the sources."""
    from bench.limits import _raise_to_vector_peaks
    from bigaccel import _extension

    ext = _extension.load()["cpu"]
    if not ext.loaded:
        pytest.skip("the CPU extension is not built")
    with pytest.raises(ValueError, match="kind must be fp32, bf16 or int8"):
        ext.module.peak_tops("fp8", 0.01)
    fp32 = ext.module.peak_tops("fp32", 0.02)
    assert (fp32 > 0) == (ext.module.active_isa() != "portable")
    assert (ext.module.peak_tops("bf16", 0.02) > 0) == ext.module.has_avx512_bf16()
    peaks = {"fp32": 1e-9, "bf16": 1e-9, "int8": 1e9}  # a slow torch GEMM; an int8 one too fast to beat
    sources = {k: "torch" for k in peaks}
    _raise_to_vector_peaks(peaks, sources, 0.04)
    if fp32 > 0:
        assert peaks["fp32"] > 1e-9 and sources["fp32"].startswith("FMA loop on every thread")
    assert peaks["int8"] == 1e9 and sources["int8"] == "torch"
