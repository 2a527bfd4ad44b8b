"""The perturbdiff presets: official defaults, assembly, loss composition, training and every sampler."""

import pytest
import torch

from distgen.api import build
from distgen.config import build_component, load_config
from distgen.models.generator import AssemblyError
from distgen.testing import tiny_batch, tiny_info, tiny_table
from distgen.train import fit

SMALL = ["model.backbone.dim=16", "model.backbone.heads=2", "model.conditioner.part_dim=4", "model.conditioner.dim=8"]


def test_preset_holds_the_official_defaults():
    doc = load_config("perturbdiff")
    m, t = doc["model"], doc["train"]
    assert (m["backbone"]["dim"], m["backbone"]["depth"], m["backbone"]["heads"], m["backbone"]["mlp_ratio"]) == (512, 8, 8, 4.0)
    bb = m["backbone"]
    assert (bb["block"], bb["time_input"], bb["timesteps"], bb["null_condition"]) == ("parallel", "step", m["dynamics"]["schedule"]["timesteps"], True)
    dyn = m["dynamics"]
    assert dyn["schedule"] == {"name": "linear", "timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}
    assert dyn["sampler"] == {"name": "ddim_official_truncated", "start_step": 99, "eta": 0.0}
    assert (dyn["prediction"], dyn["self_condition"], dyn["guidance"], dyn["clip_denoised"]) == ("x0", 0.5, 2.0, 1e-4)
    assert m["distribution_loss"]["kernel"]["name"] == "energy" and m["p_drop_condition"] == 0.5
    assert m["condition_dropout"] == "batch" and m["conditioner"]["onehot_std"] == 1.0  # per micro-batch; nn.Embedding's N(0, 1)
    assert bb["control_init"] == "official" and bb["token_bias"] == "shared"  # the code's 2G-input control layer; its shared token vector
    assert doc["data"]["matcher"] == "same_batch" and doc["data"]["matcher_params"] == {"replacement": True}  # mapping_cells
    assert m["input_scale"] == 0.1 and doc["data"]["set_size"] == 256
    assert (t["lr"], t["betas"], t["weight_decay"], t["warmup_steps"], t["min_lr_ratio"]) == (2e-4, [0.9, 0.98], 0.01, 200, 0.1)
    assert (t["decay_norm_and_bias"], t["schedule"], t["plateau_ratio"]) == (False, "cosine_floor", 0.1)
    assert (t["ema_decay"], t["ema_every"], t["ema_warmup"], t["ema_epoch_end"]) == (0.99, 10, False, True)
    assert doc["data"]["sampling"] == "partition" and doc["data"]["control_sets"] == "none"  # official: perturbed sets only


@pytest.mark.parametrize("name", ["perturbdiff", "perturbdiff-small"])
def test_presets_build_by_name(name):
    torch.manual_seed(0)
    model = build(name, tiny_info(), overrides=["model.backbone.depth=1"])
    assert type(model.backbone).__name__ == "CrossDiT" and type(model.dynamics).__name__ == "Diffusion"


def test_distribution_term_is_half_the_biased_energy_distance():
    # PerturbDiff's loss = MSE + 1.0 x geomloss "energy" = MSE + 1/2 (2 E|x-y| - E|x-x'| - E|y-y'|)
    model = build("perturbdiff-small", tiny_info(), overrides=SMALL)
    b = tiny_batch(pad_last=0)
    x, y = b.target.double(), b.control.double()
    ed = 2 * torch.cdist(x, y).mean((1, 2)) - torch.cdist(x, x).mean((1, 2)) - torch.cdist(y, y).mean((1, 2))
    got = model.distribution_weight * model.distribution_loss.distance(x, b.target_mask, y, b.control_mask)
    torch.testing.assert_close(got, 0.5 * ed, rtol=1e-6, atol=1e-8)
    model.train()
    out = model.loss(b)
    assert {"diffusion_mse", "distribution"} <= set(out.parts)
    assert out.loss.item() == pytest.approx(float(out.parts["diffusion_mse"]) + 0.5 * float(out.parts["distribution"]), rel=1e-5)


@pytest.mark.parametrize("per", ["set", "batch"])
def test_condition_dropout_covers_a_set_or_the_whole_batch(per):
    model = build("perturbdiff-small", tiny_info(), overrides=[*SMALL, "model.backbone.depth=1", f"model.condition_dropout={per}"])
    model.train()
    seen = []
    condition = model.condition

    def spy(labels, control, control_mask, gene_ids, drop=None, population=None):
        seen.append(drop.clone())
        return condition(labels, control, control_mask, gene_ids, drop, population)

    model.condition = spy
    torch.manual_seed(0)
    b = tiny_batch(b=4, pad_last=0)
    for _ in range(30):
        model.loss(b)
    kinds = {"all": sum(bool(d.all()) for d in seen), "none": sum(not bool(d.any()) for d in seen)}
    mixed = len(seen) - kinds["all"] - kinds["none"]
    assert len(seen) == 30 and all(d.shape == (4,) for d in seen)
    if per == "batch":  # one draw per step: every set or none, each about half the time
        assert mixed == 0 and kinds["all"] > 5 and kinds["none"] > 5
    else:  # one draw per set: most steps mix dropped and kept sets (7 of 8 with 4 sets)
        assert mixed > 15


def test_unknown_condition_dropout_is_rejected():
    with pytest.raises(AssemblyError, match="condition_dropout"):
        build("perturbdiff-small", tiny_info(), overrides=[*SMALL, "model.condition_dropout=cell"])


def test_guidance_without_condition_dropout_is_rejected():
    with pytest.raises(AssemblyError, match="p_drop_condition"):
        build("perturbdiff-small", tiny_info(), overrides=[*SMALL, "model.p_drop_condition=0.0"])


def test_signed_prediction_with_relu_head_is_rejected():
    with pytest.raises(AssemblyError, match="non-negative"):
        build("perturbdiff-small", tiny_info(), overrides=[*SMALL, "model.dynamics.prediction=noise"])


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = build("perturbdiff-small", tiny_info(), overrides=SMALL)
    result = fit(model, tiny_table(), steps=30, set_size=8, sets_per_batch=4, lr=3e-3, progress=False, warmup_steps=0)
    return model, result


def test_small_preset_trains(trained):
    _, result = trained
    losses = result.losses
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


SAMPLERS = [
    {"name": "ddim", "steps": 10},
    {"name": "ddim_official_truncated", "start_step": 9},
    {"name": "ddpm", "steps": 10},
    {"name": "sde", "solver": {"name": "euler", "steps": 10}},
    {"name": "ode", "solver": {"name": "rk4", "steps": 10}},
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=[s["name"] for s in SAMPLERS])
def test_every_sampler_generates_non_negative_cells(trained, sampler):
    model, _ = trained
    official = model.dynamics.sampler
    model.dynamics.sampler = build_component("diffusion_samplers", sampler)  # a sampler is a part: swap it
    b = tiny_batch()
    torch.manual_seed(1)
    cells = model.predict(b.control, b.control_mask, b.labels)
    model.dynamics.sampler = official
    assert cells.shape == b.control.shape and torch.isfinite(cells).all()
    assert (cells >= 0).all()
    assert model.last_nfe >= 10  # guidance: two network calls per step


@pytest.mark.slow
def test_kang_benchmark_script_runs(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "kang_heldout.py"
    spec = importlib.util.spec_from_file_location("kang_heldout", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "kang.json"
    mod.main(["--cell-types", "B", "--steps", "2", "--genes", "200", "--override", "model.dynamics.sampler.start_step=3", "--out", str(out)])
    run = json.loads(out.read_text())["runs"][0]
    assert set(run["scores"]) == {"model", "control", "mean_shift", "ceiling"}
    # the real other half is closer to the held-out stimulated cells than unstimulated controls are
    assert run["scores"]["ceiling"]["edistance"] < run["scores"]["control"]["edistance"]


@pytest.mark.parametrize("name", ["perturbdiff", "scdfm"])
def test_the_faithful_presets_train_in_full_fp32_as_the_official_code(name):
    """The official trainers compute in full fp32 (PerturbDiff: Lightning ``precision: 32-true``; scDFM: ``Accelerator()``
    with no mixed precision; neither sets TF32 or a float32 matmul precision, so torch's "highest" applies). The presets
    said ``precision: fp32`` but kept ``train.tf32``'s default true: TF32 matmuls (10-bit mantissa) on CUDA."""
    from distgen.train.options import train_options

    opts = train_options(load_config(name)["train"])
    assert (opts.precision, opts.tf32) == ("fp32", False)
