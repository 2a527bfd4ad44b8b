"""Every example runs in its tiny mode, as a user would start it (a fresh process), and shows what it claims."""

import csv
import importlib.metadata as md
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from distgen.cli import main
from distgen.config import load_config
from distgen.pipeline.grid import expand

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: Every runnable example outside examples/mixing (tested in test_mixing.py) and the test covering it.
COVERED = {
    "quickstart.py": "test_quickstart",
    "swap_dynamics.py": "test_swap_dynamics",
    "swap_encoder.py": "test_swap_encoder",
    "plugin/run.py": "test_plugin",
    "ablation_grid.sh": "test_ablation_grid_script",
}


def run_example(args, cwd, env=None, timeout=300):
    """Run an example in a fresh process with ``distgen`` on PATH; returns stdout (fails on a non-zero exit)."""
    env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc.stdout


def python_example(name, *args, cwd, env=None):
    return run_example([sys.executable, str(EXAMPLES / name), "--tiny", *args], cwd, env)


def test_every_example_is_tested():
    scripts = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*") if p.suffix in (".py", ".sh") and "mixing" not in p.parts
               and "my-distgen-kernel" not in p.parts}
    assert scripts == set(COVERED), "add the new example to COVERED and test it"
    names = {n for n in globals() if n.startswith("test_")}
    assert set(COVERED.values()) <= names


def test_quickstart(tmp_path):
    out = python_example("quickstart.py", "--out", str(tmp_path / "qs"), cwd=tmp_path)
    assert "held out: KLF1+MAP2K6, MAP2K3+MAP2K6, MAP2K3+SLC38A2, MAPK1+TGFBR2" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if re.match(r"^(mse|pearson_delta)\s", line)}
    assert set(rows) == {"mse", "pearson_delta"}
    model_mse, additive_mse, _ = (float(v) for v in rows["mse"])
    assert math.isfinite(model_mse) and model_mse > 0 and 0 < additive_mse < 0.01  # additive: fitted on the training singles
    with (tmp_path / "qs" / "eval" / "metrics.csv").open() as fh:
        perts = {r["perturbation"] for r in csv.DictReader(fh)}
    assert perts == {"KLF1+MAP2K6", "MAP2K3+MAP2K6", "MAP2K3+SLC38A2", "MAPK1+TGFBR2"}
    assert (tmp_path / "qs" / "eval" / "summary.md").exists()


def test_swap_dynamics_changes_one_node():
    import importlib.util

    spec = importlib.util.spec_from_file_location("swap_dynamics", EXAMPLES / "swap_dynamics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    flow, diff = (load_config("scdfm-small", mod.VARIANTS[k])["model"] for k in ("flow_matching", "diffusion"))
    assert {k for k in flow if flow[k] != diff.get(k)} == {"dynamics"}
    assert diff["dynamics"]["name"] == "diffusion" and "source" not in diff["dynamics"]  # the node was replaced


def test_swap_dynamics(tmp_path):
    out = python_example("swap_dynamics.py", cwd=tmp_path)
    lines = {m.group(1): line for line in out.splitlines() if (m := re.match(r"^\[(\w+)\] (FlowMatching|Diffusion):", line))}
    assert set(lines) == {"flow_matching", "diffusion"}
    assert "Diffusion" in lines["diffusion"] and "FlowMatching" in lines["flow_matching"]
    for line in lines.values():
        assert "samples (2, 8, 500)" in line
        err = float(line.rsplit("mse of the mean", 1)[1])
        assert math.isfinite(err) and err < 10  # sampling did not blow up
    # the tiny DDIM sampler: 4 steps, one evaluation each, per chunk of scdfm-small's predict_genes (128 of 500 genes: 4 chunks)
    assert f"{4 * math.ceil(500 / 128)} network evaluations" in lines["diffusion"]


def test_swap_encoder(tmp_path):
    out = python_example("swap_encoder.py", cwd=tmp_path)
    table = {line[:18].strip(): line[18:].split() for line in out.splitlines()[1:7]}
    floor_rbf, floor_energy = (float(v) for v in table["(control halves)"])
    # KLF1 activation changes expression strongly: far above the control-vs-control noise floor in both spaces
    rbf, energy = (float(v) for v in table["KLF1+MAP2K6"])
    assert rbf > 3 * floor_rbf and energy > 3 * floor_energy
    assert "kme(rbf) / -" in out and "kme(energy) / -" in out and "kme(rbf) / set_transformer" in out
    models = [line for line in out.splitlines() if " / " in line and "kme(" in line]
    assert len(models) == 3
    params = [int(line.split()[-6].replace(",", "")) for line in models]
    assert params[0] == params[1] < params[2]  # the kernel has no weights; the set transformer has


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The plugin pip-installed into a folder by its example script (the environment stays untouched)."""
    target = tmp_path_factory.mktemp("site")
    out = run_example([sys.executable, str(EXAMPLES / "plugin" / "run.py"), "--tiny", "--target", str(target)], cwd=target.parent)
    return target, out


def test_plugin(plugin_site):
    target, out = plugin_site
    entry_points = (target / "my_distgen_kernel-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[distgen.kernels]\nlaplacian = my_distgen_kernel.laplacian:LaplacianKernel" in entry_points
    listing = [line.split() for line in out.splitlines() if line.startswith("kernels")]
    assert listing[[r[1] for r in listing].index("laplacian")][:4] == ["kernels", "laplacian", "my-distgen-kernel", "0.1.0"]
    assert "found kernel 'laplacian' from my-distgen-kernel 0.1.0" in out
    assert "distribution_loss = KernelMeanEmbedding(LaplacianKernel)" in out
    assert "trained and sampled: (1, 16, 500) cells, finite: True" in out
    mmd = {m.group(1): float(m.group(2)) for m in re.finditer(r"(rbf|laplacian) kernel: ([\d.eE+-]+)", out)}
    assert set(mmd) == {"rbf", "laplacian"} and all(v > 0 for v in mmd.values())
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("my-distgen-kernel")  # --target left this environment alone


def test_plugin_passes_its_own_tests(plugin_site):
    target, _ = plugin_site
    tests = EXAMPLES / "plugin" / "my-distgen-kernel" / "tests"
    out = run_example([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], cwd=target.parent,
                      env={"PYTHONPATH": str(target)})
    assert re.search(r"\b10 passed\b", out), out[-500:]  # the kernel contract (cheap checks included) + its own


def test_ablation_grid_is_three_variants_with_seeds():
    doc = load_config(EXAMPLES / "ablation_grid.yaml")
    runs = expand(doc["sweep"]["grid"], doc["sweep"]["seeds"])
    variants = list(dict.fromkeys(r.variant for r in runs))
    assert len(variants) == 3 and doc["sweep"]["reference"] in variants and len(runs) == 3 * len(doc["sweep"]["seeds"])
    tiny = load_config(EXAMPLES / "ablation_grid_tiny.yaml")  # its base is found next to it, from any directory
    assert tiny["sweep"]["grid"] == doc["sweep"]["grid"] and tiny["sweep"]["seeds"] == [0, 1]
    assert tiny["model"]["coupling"] == doc["model"]["coupling"] and tiny["train"]["steps"] < doc["train"]["steps"]


def test_ablation_grid_one_cell(tmp_path, capsys, monkeypatch):
    """One run of the tiny grid (the OT coupling) through `distgen run`, as the sweep starts it."""
    monkeypatch.chdir(tmp_path)
    rc = main(["run", str(EXAMPLES / "ablation_grid_tiny.yaml"), "model.coupling.name=exact_ot", "train.seed=1",
               "--out", "cell", "--no-progress", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["metrics"]) == {"mse", "pearson_delta"}  # the config's evaluate: section was honoured
    assert set(summary["metrics"]["mse"]["baselines"]) == {"additive"}
    assert load_config(tmp_path / "cell" / "train" / "config.yaml")["model"]["coupling"]["name"] == "exact_ot"


@pytest.mark.slow
def test_ablation_grid_script(tmp_path):
    """The whole tiny sweep (6 runs in fresh processes; ~1-2 minutes on 2 cores)."""
    out = run_example(["bash", str(EXAMPLES / "ablation_grid.sh"), "--tiny", "--out", str(tmp_path / "sw")], cwd=tmp_path, timeout=900)
    sw = tmp_path / "sw"
    summary = json.loads((sw / "summary.json").read_text())
    assert summary["failed"] == [] and len(summary["finished"]) == 6
    assert summary["variants"] == ["name=independent", "name=exact_ot", "name=sinkhorn"]
    with (sw / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 * 4  # variants x seeds x held-out combinations
    comparisons = summary["comparisons"]
    assert {(c["variant"], c["metric"]) for c in comparisons} == {(v, m) for v in ("name=exact_ot", "name=sinkhorn") for m in ("mse", "pearson_delta")}
    assert all(c["n_pairs"] == 8 and 0 <= c["p_value"] <= 1 for c in comparisons)
    assert "Wilcoxon" in out and "| name=sinkhorn | 2 |" in out  # summary.md printed: variant, seeds, mean +/- sd
    again = run_example(["bash", str(EXAMPLES / "ablation_grid.sh"), "--tiny", "--out", str(sw)], cwd=tmp_path)
    assert json.loads((sw / "summary.json").read_text())["skipped"] == summary["finished"]  # resumed: nothing re-run
    assert "Wilcoxon" in again


def test_ablation_grid_script_usage(tmp_path):
    proc = subprocess.run(["bash", str(EXAMPLES / "ablation_grid.sh"), "--bogus"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--bogus" in proc.stderr
    proc = subprocess.run(["bash", str(EXAMPLES / "ablation_grid.sh"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "--tiny" in proc.stdout
