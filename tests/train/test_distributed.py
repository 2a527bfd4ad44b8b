"""2-process DDP on CPU (gloo) through torchrun: runs, stays in sync, rank 0 alone writes, matches 1 process."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distgen.train.run import train_run

from .conftest import MODEL

ROOT = Path(__file__).resolve().parents[2]

CONFIG = {
    "model": MODEL,
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "val_frac": 0.0}, "set_size": 8},
    "train": {"steps": 6, "sets_per_batch": 4, "checkpoint_every": 3, "log_every": 1, "progress": False, "lr": 3e-3},
}


def launch(cmd, timeout, env):
    """``subprocess.run(cmd, capture_output=True, text=True)``, but a launcher that runs past ``timeout`` gets SIGTERM
    first, which it passes on to its workers: ``subprocess.run`` SIGKILLs it, and the ranks (each in a session of its
    own) were left waiting on each other long after the test had failed."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def torchrun(n, *args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "-m", "distgen", *args]
    return launch(cmd, timeout, env)


def scenario(name, out, timeout=180):
    """``ddp_scenarios.py NAME`` on 2 ranks: ``(torchrun's exit status, {rank: what its fit did})``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = Path(__file__).with_name("ddp_scenarios.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script), name, str(out)]
    try:
        proc = launch(cmd, timeout, env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{name}: the ranks hung ({timeout} s); written: {sorted(p.name for p in out.iterdir())}") from exc
    return proc.returncode, {int(p.stem[4:]): json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    proc = torchrun(2, "train", str(cfg), "--out", str(root / "ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, cfg


def test_ddp_matches_single_process_with_same_global_batch(ddp_run):
    root, cfg = ddp_run
    # 1 process x 2 accumulation micro-batches = 2 ranks x 1: the same 2 shards of the same global batch
    train_run(cfg, root / "single", ["train.grad_accum=2"])
    a = load_file(str(root / "ddp" / "checkpoints" / "step_00000006" / "model.safetensors"))
    b = load_file(str(root / "single" / "checkpoints" / "step_00000006" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    start = train_run(cfg, root / "zero", ["train.steps=1", "train.lr=1e-9"])  # ~ the initial weights
    c = load_file(str(start.checkpoint / "model.safetensors"))
    assert any((a[k] - c[k]).abs().max() > 1e-4 for k in a)  # training moved the weights


def test_ranks_in_sync_and_only_rank0_writes(ddp_run):
    root, _ = ddp_run
    run = root / "ddp"
    state = json.loads((run / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rank_checksums"]) == 2
    assert state["rank_checksums"][0] == state["rank_checksums"][1]
    with (run / "metrics.csv").open() as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [1, 2, 3, 4, 5, 6]  # one row per step: a second writer would duplicate rows
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "data_record.json", "data_record.safetensors", "info.json",
                                                     "manifest.json", "metrics.csv", "split.json"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000003", "step_00000006"]
    assert json.loads((run / "manifest.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_multi_rank_predict_equals_single_process(ddp_run):
    import anndata as ad
    import numpy as np

    from distgen.pipeline.predict import predict_run

    root, _ = ddp_run
    proc = torchrun(2, "predict", str(root / "ddp"), "--out", str(root / "p2.h5ad"), "--split", "val")
    assert proc.returncode != 0 and "no perturbed cells" in proc.stderr  # val_frac=0: a clear error
    proc = torchrun(2, "predict", str(root / "ddp"), "--out", str(root / "p2.h5ad"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    predict_run(root / "ddp", root / "p1.h5ad")
    single, multi = ad.read_h5ad(root / "p1.h5ad"), ad.read_h5ad(root / "p2.h5ad")
    assert list(multi.obs["target"]) == list(single.obs["target"])
    np.testing.assert_allclose(np.asarray(multi.X), np.asarray(single.X), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_accumulation_on_two_ranks_matches_single_process(ddp_run, tmp_path, strategy):
    """FSDP2 (or DDP, whose non-final micro-batches skip the all-reduce) x 2 ranks x 2 micro-batches = 1 process x 4
    micro-batches (4 shards of 8 sets)."""
    _, cfg = ddp_run
    batch = ["train.sets_per_batch=8"]
    proc = torchrun(2, "train", str(cfg), f"train.strategy={strategy}", "train.grad_accum=2", *batch, "--out", str(tmp_path / "fsdp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    train_run(cfg, tmp_path / "single", ["train.grad_accum=4", *batch])
    a = load_file(str(tmp_path / "fsdp" / "checkpoints" / "step_00000006" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "checkpoints" / "step_00000006" / "model.safetensors"))
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fsdp_validates_like_a_single_process(tmp_path):
    """Validation calls ``model.loss``/``model.predict`` outside the wrapped forward: under FSDP the root's parameters were
    still sharded there and the first validation failed ("aten.embedding.default got mixed torch.Tensor and DTensor").
    Now the root unit is gathered around it, and the validation columns equal a single process's."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "split": {"kind": "combo_seen2", "seed": 0, "val_frac": 0.2}}}))
    val = ["train.val_every=2", "train.val_sets=4", "train.val_metrics=[mse]"]
    proc = torchrun(2, "train", str(cfg), "train.strategy=fsdp", *val, "--out", str(tmp_path / "fsdp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    train_run(cfg, tmp_path / "single", ["train.grad_accum=2", *val])
    rows = [list(csv.DictReader((tmp_path / run / "metrics.csv").open())) for run in ("fsdp", "single")]
    got = [(int(r["step"]), float(r["val_loss"]), float(r["val_mse"])) for r in rows[0] if r.get("val_loss")]
    want = [(int(r["step"]), float(r["val_loss"]), float(r["val_mse"])) for r in rows[1] if r.get("val_loss")]
    assert [g[0] for g in got] == [2, 4, 6] and [w[0] for w in want] == [2, 4, 6]
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=1e-5)


def same_weights(a_dir, b_dir, names=("model.safetensors",), atol=1e-6):
    for name in names:
        a, b = load_file(str(a_dir / name)), load_file(str(b_dir / name))
        assert a.keys() == b.keys(), name
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=atol, msg=lambda m, k=k, name=name: f"{name} {k}: {m}")


@pytest.mark.slow
def test_fsdp_trains_the_pad_transformer(tmp_path):
    """The PAD-Transformer reads every layer's gene modulation before its layers run: under FSDP its layers stay in
    the root unit (``fsdp_shard_blocks``); sharded one by one they failed with 'got mixed torch.Tensor and DTensor'.
    scDFM (its gene subsampling per step included) under DDP and under FSDP equals 1 process with the same 2 shards."""
    tiny = ["model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=2", "model.genes_per_step=32",
            "model.predict_genes=32", "data.set_size=8", "train.steps=2", "train.progress=false"]
    for strategy in ("fsdp", "ddp"):
        proc = torchrun(2, "train", "scdfm-small", *tiny, f"train.strategy={strategy}", "--out", str(tmp_path / strategy))
        assert proc.returncode == 0, proc.stderr[-3000:]
    train_run("scdfm-small", tmp_path / "single", [*tiny, "train.grad_accum=2"])
    step = Path("checkpoints") / "step_00000002"
    for strategy in ("fsdp", "ddp"):
        same_weights(tmp_path / strategy / step, tmp_path / "single" / step)


@pytest.mark.slow
def test_perturbdiff_ddp_matches_single_process(tmp_path):
    """PerturbDiff under DDP: its self-conditioning coin and diffusion times are drawn per shard, not per rank, and its
    EMA is updated alike on every rank: 2 ranks equal 1 process with the same 2 shards, weights and EMA weights."""
    tiny = ["model.backbone.dim=16", "model.backbone.depth=1", "model.conditioner.part_dim=8", "model.conditioner.dim=16",
            "data.set_size=8", "train.steps=3", "train.progress=false", "train.sets_per_batch=4"]
    proc = torchrun(2, "train", "perturbdiff-small", *tiny, "--out", str(tmp_path / "ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    train_run("perturbdiff-small", tmp_path / "single", [*tiny, "train.grad_accum=2"])
    step = Path("checkpoints") / "step_00000003"
    config = yaml.safe_load((tmp_path / "ddp" / "config.yaml").read_text())
    assert config["train"]["ema_decay"] and config["model"]["dynamics"]["self_condition"] > 0  # what this test is about
    same_weights(tmp_path / "ddp" / step, tmp_path / "single" / step, ("model.safetensors", "ema.safetensors"))
    start = train_run("perturbdiff-small", tmp_path / "zero", [*tiny, "train.steps=1", "train.lr=1e-12"])
    a, c = load_file(str(tmp_path / "ddp" / step / "model.safetensors")), load_file(str(start.checkpoint / "model.safetensors"))
    assert any((a[k].float() - c[k].float()).abs().max() > 1e-5 for k in a if a[k].is_floating_point())  # it trained


@pytest.mark.slow
def test_fsdp_refuses_a_self_conditioning_dynamics(tmp_path):
    """Each rank draws its own self-conditioning coin, so FSDP's collectives would not pair up (gloo aborted with a
    collective mismatch, NCCL hangs): refused as a config error naming the fix."""
    tiny = ["model.backbone.dim=16", "model.backbone.depth=1", "model.conditioner.part_dim=8", "model.conditioner.dim=16",
            "data.set_size=8", "train.steps=2", "train.progress=false", "train.ema_decay=null", "train.sets_per_batch=4"]
    proc = torchrun(2, "train", "perturbdiff-small", *tiny, "train.strategy=fsdp", "--out", str(tmp_path / "fsdp"))
    assert proc.returncode != 0 and "cannot train a self-conditioning dynamics" in proc.stderr, proc.stderr[-3000:]
    assert "train.strategy=ddp" in proc.stderr and "collective" not in proc.stderr.lower().split("config error")[0]


@pytest.mark.slow
def test_ranks_take_rank0s_validation_so_all_stop_at_the_same_step(tmp_path):
    """Early stopping is decided from the validation numbers; each rank judged its own, so a rank whose numbers differed
    (GPU non-determinism is enough) could stop while the others trained on, waiting for it forever (this scenario hung
    until its timeout). Every rank now takes rank 0's numbers: all stop at the same step, with the same best step."""
    code, ranks = scenario("val_differs", tmp_path)
    assert code == 0 and sorted(ranks) == [0, 1], ranks
    assert ranks[0] == ranks[1] == {"step": 2, "stopped_early": True, "best_step": 1}


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank(tmp_path):
    """A NaN loss on rank 1 only: the step's all-reduce carries the count of non-finite losses, so both ranks raise
    NonFiniteLossError at the same step (none trains on, none hangs); rank 1 names its batch's conditions."""
    code, ranks = scenario("nan_on_rank1", tmp_path)
    assert code != 0 and sorted(ranks) == [0, 1], ranks
    for r in (0, 1):
        assert ranks[r]["error"] == "NonFiniteLossError" and ranks[r]["step"] == 1
        assert f"non-finite loss at step 2 (rank {r};" in ranks[r]["message"]
    assert "batch conditions: (on rank 1: its error names them)" in ranks[0]["message"] and "@" in ranks[1]["message"].split("batch conditions:")[1]


def test_the_cuda_process_group_has_a_backend_for_cpu_tensors(monkeypatch):
    """The trainer all-reduces small CPU tensors every step (loss sum, non-finite count, stop request) and gathers CPU
    checksums and validation numbers. Under torchrun on GPUs the group was ``nccl`` alone, which has no backend for CPU
    tensors ("No backend type associated with device type cpu" at the first step); it is now NCCL for CUDA tensors and
    gloo for CPU ones. (No GPU here: the backend distgen asks torch for is read back through torch's own parser.)"""
    import torch.distributed as dist
    from torch.distributed.distributed_c10d import BackendConfig

    from distgen.train import distributed as D

    asked = {}
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: asked.setdefault("backend", backend))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    assert D.init_from_env(torch.device("cuda", 0)).world_size == 2
    assert {k: str(v) for k, v in BackendConfig(asked.pop("backend")).get_device_backend_map().items()} == {"cpu": "gloo", "cuda": "nccl"}
    D.init_from_env(torch.device("cpu"))
    assert {k: str(v) for k, v in BackendConfig(asked["backend"]).get_device_backend_map().items()}["cpu"] == "gloo"


@pytest.mark.slow
def test_resume_under_two_ranks_continues_the_same_trajectory(ddp_run, tmp_path):
    """A 2-rank run stopped after its step-3 checkpoint and resumed on 2 ranks ends where the uninterrupted one does:
    the same weights and optimizer moments (to the bit), the same step counter, LR schedule and logged losses."""
    import shutil

    root, cfg = ddp_run
    run = tmp_path / "resumed"
    shutil.copytree(root / "ddp", run)
    shutil.rmtree(run / "checkpoints" / "step_00000006")  # as if killed after step 3's checkpoint
    proc = torchrun(2, "train", str(cfg), "--out", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # checkpoints/latest names the removed step 6: said once, by rank 0 (not by each rank)
    assert proc.stderr.count("which is gone") == 1, proc.stderr[-3000:]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a = load_file(str(root / "ddp" / "checkpoints" / "step_00000006" / name))
        b = load_file(str(run / "checkpoints" / "step_00000006" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    rows = [[(r["step"], r["loss"], r["lr"]) for r in csv.DictReader((d / "metrics.csv").open())] for d in (root / "ddp", run)]
    assert rows[0] == rows[1] and len(rows[1]) == 6
    assert [r["step"] for r in json.loads((run / "manifest.json").read_text())["resumes"]] == [3]


@pytest.mark.slow
def test_a_rank_killed_mid_run_leaves_a_resumable_folder_that_claims_nothing(ddp_run, tmp_path):
    """Rank 1 SIGKILLed mid-training (an OOM kill, a lost node): torchrun stops rank 0 (no hang), the manifest has no
    ``training`` record (only a finished ``distgen train`` writes one), no lock is left, and --resume continues."""
    import signal
    import time

    _, cfg = ddp_run
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "distgen", "train", str(cfg),
           "train.steps=100000", "train.checkpoint_every=5", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list((run / "checkpoints").glob("step_*"))) < 2:
            time.sleep(0.5)
        ranks = {}
        for child in Path("/proc").glob("[0-9]*"):
            try:
                env = dict(kv.split("=", 1) for kv in (child / "environ").read_text().split("\0") if "=" in kv)
                if int((child / "stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.pid and "RANK" in env:
                    ranks[int(env["RANK"])] = int(child.name)
            except (OSError, ValueError):
                continue
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)  # torchrun stops the other rank: no hang
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "rank      : 1" in err
    manifest = json.loads((run / "manifest.json").read_text())
    assert "training" not in manifest and not (run / ".distgen.lock").exists()
    from distgen.train.checkpoint import list_checkpoints

    done = int(list_checkpoints(run / "checkpoints")[-1].name.split("_")[1])
    proc2 = torchrun(2, "train", str(cfg), f"train.steps={done + 2}", "train.checkpoint_every=5", "--out", str(run), "--resume")
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert json.loads((run / "manifest.json").read_text())["training"]["steps_done"] == done + 2


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_exactly_on_one_process_with_the_same_shards(ddp_run, tmp_path):
    """Resuming on another number of processes: with world_size x grad_accum kept (2 ranks x 1 -> 1 process x 2) the run
    continues exactly, to the uninterrupted 2-rank run's weights (train.grad_accum was refused as a config change);
    with another number of shards it continues, differently, and says so (ResumeShardsWarning)."""
    from distgen.train.trainer import ResumeShardsWarning

    root, cfg = ddp_run
    ckpt = root / "ddp" / "checkpoints" / "step_00000003"
    train_run(cfg, tmp_path / "same", ["train.grad_accum=2"], resume=ckpt)
    same_weights(root / "ddp" / "checkpoints" / "step_00000006", tmp_path / "same" / "checkpoints" / "step_00000006")
    with pytest.warns(ResumeShardsWarning, match="1 x 1 = 1 shard.*trained with 2.*world_size x grad_accum = 2"):
        train_run(cfg, tmp_path / "other", resume=ckpt)
    manifest = json.loads((tmp_path / "other" / "manifest.json").read_text())
    assert any("trained with 2" in w for w in manifest["warnings"])
    with pytest.raises(Exception, match=r"train\.grad_accum: 1 -> 4"):  # 1 x 4 shards: still another config
        train_run(cfg, tmp_path / "four", ["train.grad_accum=4"], resume=ckpt)


@pytest.mark.slow
def test_distgen_run_under_two_ranks_trains_predicts_and_scores_once_like_one_process(ddp_run, tmp_path):
    """``torchrun -m distgen run`` (train, predict, evaluate in one command): until 2026-12-07 it crashed after the training
    (the training left the process group and the prediction joined a new one, whose gloo mesh failed to connect: "internal
    error"). Now the ranks share the prediction's groups and rank 0 alone writes and scores: the same files and numbers as
    one process with the same global batch (2 ranks x 1 = 1 process x 2 micro-batches: the same weights)."""
    import anndata as ad
    import numpy as np

    from distgen.pipeline.experiment import run as run_experiment

    _, cfg = ddp_run
    proc = torchrun(2, "run", str(cfg), "--out", str(tmp_path / "two"), "--metrics", "mse,pearson_delta", "--no-plots", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("report:") == 1  # one evaluation, by rank 0
    run_experiment(cfg, tmp_path / "one", ["train.grad_accum=2"], progress=False, metrics=["mse", "pearson_delta"], plots=False)
    two, one = (json.loads((tmp_path / d / "eval" / "summary.json").read_text()) for d in ("two", "one"))
    assert two["metrics"] == one["metrics"] and two["baselines"] == one["baselines"] and two["weights"] == one["weights"]
    a, b = ad.read_h5ad(tmp_path / "two" / "pred.h5ad"), ad.read_h5ad(tmp_path / "one" / "pred.h5ad")
    assert list(a.obs_names) == list(b.obs_names)
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
    # run again: every rank skips the finished experiment (until 2026-12-07 rank 1 resumed it, deleted its DONE and waited
    # for rank 0 in the prediction until torchrun's timeout)
    done = (tmp_path / "two" / "DONE").read_text()
    again = torchrun(2, "run", str(cfg), "--out", str(tmp_path / "two"), "--metrics", "mse,pearson_delta", "--no-plots", "--no-progress",
                     timeout=120)
    assert again.returncode == 0 and "already holds this finished experiment" in again.stderr, again.stderr[-3000:]
    assert again.stdout.count("report:") == 1 and (tmp_path / "two" / "DONE").read_text() == done


@pytest.mark.slow
def test_distgen_run_under_fsdp_predicts_with_the_whole_model(ddp_run, tmp_path):
    """``torchrun -m distgen run CONFIG train.strategy=fsdp``: the training left each rank its shards of the weights, and
    the prediction (each rank its own groups) crashed ("got mixed torch.Tensor and DTensor", internal error). Each rank
    now predicts with the whole weights of the checkpoint just written: the cells are those ``distgen predict`` makes
    from that run folder in one process."""
    import anndata as ad
    import numpy as np

    from distgen.pipeline.predict import predict_run

    _, cfg = ddp_run
    out = tmp_path / "fsdp"
    proc = torchrun(2, "run", str(cfg), "train.strategy=fsdp", "--out", str(out), "--metrics", "mse", "--no-plots", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("report:") == 1 and (out / "eval" / "summary.json").is_file()
    predict_run(out / "train", tmp_path / "again.h5ad")
    a, b = ad.read_h5ad(out / "pred.h5ad"), ad.read_h5ad(tmp_path / "again.h5ad")
    assert list(a.obs_names) == list(b.obs_names)
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
