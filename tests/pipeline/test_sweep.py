"""Sweep: grid expansion, resume, retries, aggregation and paired statistics (fast fake runner)."""

import csv
import json
import math

import numpy as np
import pytest

from distgen.config import ConfigError, save_yaml
from distgen.pipeline.grid import expand, parse_grid_arg
from distgen.pipeline.sweep import METRICS_FILE, sweep

PERTS = [f"P{i}" for i in range(8)]


def test_parse_and_expand():
    key, vals = parse_grid_arg("model.encoder.name=[kme,set_transformer]")
    assert key == "model.encoder.name" and vals == ["kme", "set_transformer"]
    runs = expand({key: vals, "train.seed": [0, 1, 2], "model.depth": [2]})
    assert len(runs) == 6
    assert {r.variant for r in runs} == {"name=kme,depth=2", "name=set_transformer,depth=2"}
    r0 = runs[0]
    assert "model.encoder.name=kme" in r0.overrides and "train.seed=0" in r0.overrides
    assert expand({}, seeds=[3])[0].slug == "base__seed3"
    with pytest.raises(ConfigError):
        parse_grid_arg("nokey")
    with pytest.raises(ConfigError):
        expand({"a.b": []})


class FakeRunner:
    """Writes a metrics.csv whose values depend on the variant: 'good' has lower mse."""

    def __init__(self, fail_first=()):
        self.calls = []
        self.fail_first = set(fail_first)

    def __call__(self, config, run, run_dir):
        self.calls.append(run.slug)
        if run.slug in self.fail_first:
            self.fail_first.discard(run.slug)
            return 1
        rng = np.random.default_rng(run.seed)
        shift = 0.0 if "good" in run.variant else 0.5
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "mse", "pearson_delta"])
            for p in PERTS:
                w.writerow([p, 1.0 + shift + rng.normal(0, 0.01), 0.5 - shift + rng.normal(0, 0.01)])
        return 0


@pytest.fixture
def base(tmp_path):
    return str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))


def test_sweep_aggregates_with_paired_test(tmp_path, base):
    runner = FakeRunner()
    res = sweep(base, {"description": ["good", "bad"], "train.seed": [0, 1, 2]}, tmp_path / "sw", runner=runner,
                metrics=["mse", "pearson_delta"], progress=False)
    assert len(res.finished) == 6 and not res.failed
    rows = list(csv.DictReader((tmp_path / "sw" / "results.csv").open()))
    assert len(rows) == 6 * len(PERTS)
    text = (tmp_path / "sw" / "summary.md").read_text()
    assert "description=good" in text and "description=bad" in text and "Wilcoxon" in text
    (cmp_mse,) = [c for c in res.comparisons if c.metric == "mse"]
    assert cmp_mse.variant == "description=bad" and cmp_mse.n_pairs == 3 * len(PERTS)
    assert cmp_mse.mean_diff == pytest.approx(0.5, abs=0.02)
    # the fake runs of one seed share their noise, so every seed's mean difference is 0.5 exactly: the seeds repeat one
    # comparison, which is tested over its 8 perturbations (2 / 2**8), not as 24 independent pairs
    assert cmp_mse.test == "Wilcoxon over perturbations" and cmp_mse.n_units == len(PERTS)
    assert cmp_mse.p_value == pytest.approx(2 / 2**8) and cmp_mse.better == "reference"
    assert (tmp_path / "sw" / "summary.png").stat().st_size > 0


def test_sweep_resumes_and_retries(tmp_path, base):
    grid = {"description": ["good", "bad"], "train.seed": [0, 1]}
    runner = FakeRunner(fail_first={"description=bad__seed1"})
    res = sweep(base, grid, tmp_path / "sw", runner=runner, retries=1, progress=False)
    assert not res.failed and runner.calls.count("description=bad__seed1") == 2
    runner2 = FakeRunner()
    res2 = sweep(base, grid, tmp_path / "sw", runner=runner2, progress=False)
    assert runner2.calls == [] and len(res2.skipped) == 4  # everything finished: nothing re-run


def test_sweep_reports_failed_runs(tmp_path, base):
    runner = FakeRunner(fail_first={"description=bad__seed0"})
    res = sweep(base, {"description": ["good", "bad"]}, tmp_path / "sw", runner=runner, retries=0, progress=False)
    assert res.failed == ["description=bad__seed0"]
    assert "Failed runs" in (tmp_path / "sw" / "summary.md").read_text()


def test_grid_from_yaml_section_and_bad_reference(tmp_path):
    cfg = save_yaml({"model": {"name": "control"}, "sweep": {"grid": {"description": ["good", "bad"]}, "seeds": [0, 1],
                                                                "reference": "description=bad"}}, tmp_path / "s.yaml")
    res = sweep(str(cfg), out=tmp_path / "sw", runner=FakeRunner(), metrics=["mse"], progress=False)
    assert len(res.runs) == 4 and res.comparisons[0].variant == "description=good"
    assert not math.isnan(res.comparisons[0].p_value)
    with pytest.raises(ConfigError, match="reference variant 'nope'"):
        sweep(str(cfg), out=tmp_path / "sw2", reference="nope", runner=FakeRunner(), progress=False)


def test_a_base_axis_puts_whole_configs_on_one_grid(tmp_path, monkeypatch):
    """``base=[...]`` swaps the whole preset under the sweep file: here two closed-form models, really run."""
    from distgen.pipeline.experiment import run as run_experiment

    data = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 16}
    save_yaml({"model": {"name": "additive"}}, tmp_path / "additive.yaml")
    save_yaml({"model": {"name": "control"}}, tmp_path / "nochange.yaml")
    cfg = save_yaml({"base": "additive.yaml", "data": data, "evaluate": {"plots": False},
                     "sweep": {"grid": {"base": ["nochange.yaml", "additive.yaml"]}, "seeds": [0, 1]}}, tmp_path / "models.yaml")
    monkeypatch.chdir(tmp_path)

    def in_process(config, run, run_dir):
        run_experiment(config, run_dir, run.overrides, progress=False, metrics=["mse", "pearson_delta"], plots=False)
        return 0

    res = sweep(str(cfg), out=tmp_path / "sw", runner=in_process, progress=False)
    assert sorted(res.finished) == ["base=additive.yaml__seed0", "base=additive.yaml__seed1",
                                    "base=nochange.yaml__seed0", "base=nochange.yaml__seed1"]
    from distgen.config import load_yaml

    assert load_yaml(tmp_path / "sw" / "runs" / "base=nochange.yaml__seed1" / "experiment.yaml")["model"] == {"name": "control"}
    (cmp,) = [c for c in res.comparisons if c.metric == "mse"]
    assert cmp.variant == "base=additive.yaml" and cmp.n_pairs == 8  # 2 seeds x 4 held-out pairs, vs the first variant
    assert cmp.mean_diff < 0 and cmp.better == "variant"  # adding the seen singles' effects beats predicting no change


def test_variants_with_identical_results_are_flagged(tmp_path, base, capsys):
    # the fake runner's values depend only on the seed and on whether the variant says "good": "good" and "also_good"
    # generate the same results, as two settings that coincide on the data would (data.matcher random and same_batch
    # on data with one context and one batch)
    import json

    res = sweep(base, {"description": ["good", "bad", "also_good"], "train.seed": [0, 1]}, tmp_path / "sw", runner=FakeRunner(),
                progress=False)
    summary = json.loads((res.out / "summary.json").read_text())
    assert summary["identical"] == {"description=also_good": "description=good"}
    text = (res.out / "summary.md").read_text()
    assert "## Variants without effect" in text and "- `description=also_good` = `description=good`" in text
    assert "sweep variant description=also_good gave the results of description=good" in capsys.readouterr().err
    html = (res.out / "report.html").read_text()
    assert 'id="identical"' in html and "<code>description=also_good</code> = <code>description=good</code>" in html


def test_labels_that_look_like_numbers_stay_distinct_perturbations(tmp_path, base):
    """``001``, ``1``, ``1.0`` and ``1e0`` are four perturbations: read as floats they were all 1.0, so the paired test
    had a quarter of its pairs (and overwrote three of each four values), and results.csv lost the labels."""
    labels = ["001", "1", "1.0", "1e0", "2", "nan_ctrl"]

    def runner(config, run, run_dir):
        rng = np.random.default_rng(run.seed)
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "context", "mse"])
            for p in labels:
                w.writerow([p, "1e3", 1.0 + (0.5 if "bad" in run.variant else 0.0) + rng.normal(0, 0.01)])
        return 0

    res = sweep(base, {"description": ["good", "bad"], "train.seed": [0, 1]}, tmp_path / "sw", runner=runner, metrics=["mse"],
                progress=False)
    (cmp,) = res.comparisons
    assert cmp.n_pairs == 2 * len(labels)
    rows = list(csv.DictReader((tmp_path / "sw" / "results.csv").open()))
    assert sorted({r["perturbation"] for r in rows}) == sorted(labels) and {r["context"] for r in rows} == {"1e3"}
    from distgen.report.sweep import load_sweep_dir

    back = load_sweep_dir(tmp_path / "sw")
    assert sorted({r["perturbation"] for r in back.rows}) == sorted(labels)


def test_too_few_pairs_is_not_a_tie_and_a_nonsignificant_side_says_so():
    """One shared (seed, perturbation) pair with a large difference was reported as better='tie'; no pair at all too.
    summary.md named a side by the sign of the mean even where p was large (the sweep page said 'not significant')."""
    from distgen.pipeline.aggregate import paired_comparison, summary_markdown

    one = [{"variant": v, "seed": 0, "perturbation": "P0", "mse": m} for v, m in (("ref", 1.0), ("new", 3.0))]
    c = paired_comparison(one, "new", "ref", "mse")
    assert c.n_pairs == 1 and c.mean_diff == 2.0 and c.better == "one pair: no test" and math.isnan(c.p_value)
    none = [{"variant": "ref", "seed": 0, "perturbation": "P0", "mse": 1.0}, {"variant": "new", "seed": 0, "perturbation": "P1", "mse": 3.0}]
    assert paired_comparison(none, "new", "ref", "mse").better == "no shared pairs"
    same = [{**r, "mse": 1.0} for r in one] + [{**r, "perturbation": "P1", "mse": 2.0} for r in one]
    assert paired_comparison(same, "new", "ref", "mse").better == "tie"
    diffs = [0.5, -0.4, 0.3, -0.6, 0.2, -0.1, 0.7, -0.55]
    noisy = [{"variant": "ref", "seed": 0, "perturbation": f"P{i}", "mse": 1.0} for i in range(8)]
    noisy += [{"variant": "new", "seed": 0, "perturbation": f"P{i}", "mse": 1.0 + d} for i, d in enumerate(diffs)]
    text, (cmp,) = summary_markdown(noisy, ["ref", "new"], "ref", ["mse"])
    assert cmp.p_value >= 0.05 and cmp.verdict == "inconclusive" and f"| inconclusive (mean favours {cmp.better}) |" in text


def test_the_sweep_summary_says_its_numbers_are_test_scores():
    """A reviewer reading summary.md must see that choosing a variant from it would be selection on the test split."""
    from distgen.pipeline.aggregate import summary_markdown

    rows = [{"variant": v, "seed": 0, "perturbation": "P0", "mse": 1.0} for v in ("ref", "new")]
    text, _ = summary_markdown(rows, ["ref", "new"], "ref", ["mse"])
    assert "scored on its test split" in text and "model selection on the test set" in text


def test_a_sweep_that_leaves_out_finished_runs_of_its_folder_is_refused(tmp_path, base):
    """A second sweep of another grid into the same folder replaced the first one's results.csv and summary with its own
    rows, without a word; now it is refused before any run, and a grid that keeps the finished runs reuses them."""
    out = tmp_path / "sw"
    sweep(base, {"description": ["good", "bad"]}, out, runner=FakeRunner(), progress=False)
    before = {n: (out / n).read_bytes() for n in ("results.csv", "summary.md", "summary.json", "sweep.yaml")}
    runner = FakeRunner()
    with pytest.raises(ConfigError, match=r"description=bad__seed0, description=good__seed0.*another --out"):
        sweep(base, {"description": ["other"]}, out, runner=runner, progress=False)
    assert runner.calls == [] and {n: (out / n).read_bytes() for n in before} == before
    res = sweep(base, {"description": ["good", "bad", "other"]}, out, runner=runner, progress=False)  # extended: reused
    assert runner.calls == ["description=other__seed0"] and len(res.skipped) == 2
    assert {r["variant"] for r in csv.DictReader((out / "results.csv").open())} == {"description=good", "description=bad",
                                                                                   "description=other"}


@pytest.mark.parametrize(("values", "folders"), [
    (["nan", "true", "1e3"], ["x=nan", "x=true", "x=1e3"]),  # strings a YAML override must quote: named as written, not '-nan'
    ([float("inf"), float("-inf"), -1, -0.5], ["x=inf", "x=-inf", "x=-1", "x=-0.5"]),
    ([[64, 64], [-1, 2]], ["x=64+64", "x=-1+2"]),  # a list's brackets read as minus signs ('-1,-2' for [1, 2])
    (["a/b", "../up"], ["x=a-b", "x=..-up"]),  # never a path separator: the run folder stays under runs/
    ([np.float32(0.5), np.int64(3), np.linspace(0, 1, 2)], ["x=0.5", "x=3", "x=0.0+1.0"]),  # numpy values (was a crash)
])
def test_run_folder_names_read_as_their_values(values, folders):
    runs = expand({"x": values})
    assert [r.variant for r in runs] == folders and all("/" not in r.slug for r in runs)
    assert all(r.overrides[0].startswith("x=") and "numpy" not in r.overrides[0] for r in runs)


def test_a_grid_value_too_long_for_a_folder_name_gets_a_bounded_distinct_folder(tmp_path):
    """A 600-character label in data.split.test_conditions made a run folder the file system refused (exit 1, 'File
    name too long', after the sweep had started); now the name is cut with a digest of the whole: bounded, distinct,
    and the override keeps the value whole."""
    long = ["G" * 300 + "+" + "H" * 300, "G" * 300 + "+" + "H" * 299 + "x"]  # differ in their last character only
    runs = expand({"data.split.test_conditions": [[v] for v in long], "train.seed": [0, 1234567890]})
    assert len({r.slug for r in runs}) == 4 and all(len(r.slug.encode()) <= 241 for r in runs)
    assert all(long[i] in runs[2 * i].overrides[0] for i in range(2))
    for r in runs:  # each folder can be made where a file name holds 255 bytes (distgen.atomic's temporary names included)
        (tmp_path / r.slug).mkdir()
    assert [r.variant for r in expand({"x": ["short"]})] == ["x=short"]  # a name that fits is left as it is


#: Run folders a sweep of this grid wrote before 2026-12-05 (each value as YAML writes it, then slugged) and now.
FORMER = {"description=-nan-,x-sizes=-64,-64__seed0": "description=nan,x-sizes=64+64__seed0",
          "description=-nan-,x-sizes=-1.0e-05__seed0": "description=nan,x-sizes=1e-05__seed0",
          "description=good,x-sizes=-64,-64__seed0": "description=good,x-sizes=64+64__seed0",
          "description=good,x-sizes=-1.0e-05__seed0": "description=good,x-sizes=1e-05__seed0"}
OLD_GRID = {"description": ["nan", "good"], "x-sizes": [[64, 64], [1.0e-5]]}


def test_a_sweep_started_under_the_former_folder_names_continues_in_them(tmp_path, base, capsys):
    """A sweep begun before 2026-12-05 named run folders from YAML (``-nan-``, ``-64,-64``): resuming it did not find them,
    so it refused the folder as holding runs of another grid ('give a grid that includes them'), or, with no run finished,
    trained every run again from scratch. Now its folders are renamed, finished runs skipped, unfinished ones continued."""
    assert {r.former_slug: r.slug for r in expand(OLD_GRID)} == FORMER
    out = tmp_path / "sw"
    sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)
    for old, new in FORMER.items():  # the folders as the former naming left them
        (out / "runs" / new).rename(out / "runs" / old)
    (out / "runs" / "description=good,x-sizes=-64,-64__seed0" / "DONE").unlink()  # one run was still going
    (out / "runs" / "description=good,x-sizes=-64,-64__seed0" / "checkpoint-marker").write_text("kept")
    capsys.readouterr()
    runner = FakeRunner()
    res = sweep(base, OLD_GRID, out, runner=runner, progress=False)
    assert "4 run folder(s) renamed" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(FORMER.values())
    assert runner.calls == ["description=good,x-sizes=64+64__seed0"] and len(res.skipped) == 3  # continued, in its folder
    assert (out / "runs" / "description=good,x-sizes=64+64__seed0" / "checkpoint-marker").read_text() == "kept"
    assert len(list(csv.DictReader((out / "results.csv").open()))) == 4 * len(PERTS)


def test_a_run_with_a_folder_under_both_names_is_refused_saying_which(tmp_path, base):
    out = tmp_path / "sw"
    sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)
    (out / "runs" / "description=-nan-,x-sizes=-64,-64__seed0").mkdir()
    runner = FakeRunner()
    with pytest.raises(ConfigError, match=r"two folders, runs/description=-nan-,x-sizes=-64,-64__seed0 \(its name before"):
        sweep(base, OLD_GRID, out, runner=runner, progress=False)
    assert runner.calls == []


#: Takes the run lock of a folder as ``distgen run`` does, says ``held`` and keeps it until its stdin closes; or says
#: ``refused`` with the message when the folder is in use.
HOLDER = """
import sys
from distgen.train.lock import RunLock, RunLockedError
try:
    lock = RunLock(sys.argv[1], "run").acquire()
except RunLockedError as exc:
    print("refused:", exc, flush=True)
    sys.exit(0)
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


def _former_sweep(out, base):
    """A sweep folder as a sweep begun before 2026-12-05 left it (every run finished, folders under the former names)."""
    sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)
    for old, new in FORMER.items():
        (out / "runs" / new).rename(out / "runs" / old)


def test_a_former_folder_in_use_is_not_renamed_and_the_sweep_says_by_whom(tmp_path, base):
    import subprocess
    import sys

    from distgen.train.lock import RunLockedError

    out = tmp_path / "sw"
    _former_sweep(out, base)
    busy = "description=good,x-sizes=-64,-64__seed0"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / "runs" / busy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        runner = FakeRunner()
        with pytest.raises(RunLockedError, match=rf"runs/{busy} \(the folder of run description=good,x-sizes=64\+64__seed0 "
                           rf"before 2026-12-05\) is in use by distgen run \(pid {holder.pid} .*wait for that process to finish"):
            sweep(base, OLD_GRID, out, runner=runner, progress=False)
        assert runner.calls == [] and (out / "runs" / busy / "DONE").exists()  # left where the live run writes
        assert not (out / "runs" / FORMER[busy]).exists()
    finally:
        holder.communicate("")
    sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)  # once it has finished, the folder is renamed
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(FORMER.values())


def test_a_former_folder_whose_holder_let_go_after_refusing_is_named_by_the_refusals_holder(tmp_path, base, monkeypatch):
    """The refusal to rename a former folder in use read the lock
    file again for the holder's name; a holder that had let go in between (its file removed) was then "another process
    (its lock file is empty or unreadable)". The name now comes with the refusal (``RunLockedError.holder``)."""
    from distgen.train.lock import RunLock, RunLockedError

    out = tmp_path / "sw"
    _former_sweep(out, base)
    gone = {"pid": 4242, "host": "node7", "purpose": "run", "since": "2026-12-07 12:00:00"}

    real_take = RunLock._take

    def refused_then_released(self):  # refused by a live holder, which has finished (and removed its file) since
        if self.folder.name != "description=good,x-sizes=-64,-64__seed0":
            return real_take(self)
        raise self._refuse(gone)

    monkeypatch.setattr(RunLock, "_take", refused_then_released)
    with pytest.raises(RunLockedError, match=r"before 2026-12-05\) is in use by distgen run \(pid 4242 on node7"):
        sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)


def test_a_former_folder_is_renamed_while_its_lock_is_held_so_no_run_starts_in_it_in_between(tmp_path, base, monkeypatch):
    """The sweep took the folder's lock and let it go before renaming it: a run started in between locked the folder and
    wrote into it while the sweep moved it away. Now the lock is held across the rename: a run that tries then is
    refused, and the renamed folder carries no lock file."""
    import pathlib
    import subprocess
    import sys

    from distgen.train.lock import LOCK_NAME

    out = tmp_path / "sw"
    _former_sweep(out, base)
    tries = {}
    rename = pathlib.Path.rename

    def a_run_starts_now(self, target):
        if self.parent == out / "runs":  # a run of this folder starts just before the sweep renames it
            tries[self.name] = subprocess.run([sys.executable, "-c", HOLDER, str(self)], input="", capture_output=True,
                                              text=True).stdout
        return rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", a_run_starts_now)
    sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)
    assert sorted(tries) == sorted(FORMER)
    assert all(t.startswith("refused:") and "is in use by distgen sweep" in t for t in tries.values()), tries
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(FORMER.values())
    assert not any((out / "runs" / new / LOCK_NAME).exists() for new in FORMER.values())


#: Opens the lock file of a folder as ``distgen run`` does, says ``opened`` and waits for a line on stdin before it locks the
#: file (``flock``); then says ``held``, or ``refused`` with the message.
LATE_LOCKER = """
import fcntl
import sys
from distgen.train.lock import RunLock, RunLockedError
flock = fcntl.flock
def late(fd, operation):
    print("opened", flush=True)
    sys.stdin.readline()
    fcntl.flock = flock
    return flock(fd, operation)
fcntl.flock = late
try:
    RunLock(sys.argv[1], "run").acquire()
except RunLockedError as exc:
    print("refused:", exc, flush=True)
else:
    print("held", flush=True)
"""


def test_a_run_that_opened_a_former_folders_lock_file_before_the_sweep_renamed_it_is_refused_naming_the_new_folder(
        tmp_path, base, monkeypatch):
    """A run had opened runs/OLD/.distgen.lock (the sweep holding it) when the sweep renamed the folder, removed the lock
    file and let the lock go; the run then locked the removed file and, retrying on runs/OLD, failed with a bare
    FileNotFoundError, writing nothing. Now it is refused (RunLockedError) naming the folder, the sweep and the new name."""
    import pathlib
    import subprocess
    import sys

    out = tmp_path / "sw"
    _former_sweep(out, base)
    busy = "description=good,x-sizes=-64,-64__seed0"
    late = {}
    rename = pathlib.Path.rename

    def a_run_opens_the_lock_file_now(self, target):
        if self.name == busy:  # the sweep holds the folder's lock: the run opens the lock file and waits to lock it
            late["proc"] = subprocess.Popen([sys.executable, "-c", LATE_LOCKER, str(self)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert late["proc"].stdout.readline().strip() == "opened"
        return rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", a_run_opens_the_lock_file_now)
    sweep(base, OLD_GRID, out, runner=FakeRunner(), progress=False)  # renamed, its lock let go
    said, err = late["proc"].communicate("go\n", timeout=60)
    assert late["proc"].returncode == 0, err
    assert said.startswith("refused:"), (said, err)
    assert f"{out / 'runs' / busy} was moved or removed by distgen sweep (pid " in said
    assert f"It is now {out / 'runs' / FORMER[busy]}: give that folder" in said
    assert not (out / "runs" / busy).exists()  # nothing written under the former name
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(FORMER.values())


@pytest.mark.parametrize("values", [[float("nan")], [np.float64("nan"), 1.0]])
def test_a_nan_grid_value_is_refused_naming_the_axis(values):
    with pytest.raises(ConfigError, match=r"grid axis 'train.lr' holds NaN"):
        expand({"train.lr": values})


@pytest.mark.parametrize("values", [["a b", "a-b"], ["Large", "large"], ["inf", float("inf")], [True, "true"]])
def test_variants_that_would_share_a_run_folder_are_refused_naming_them(values):
    """``a b`` and ``a-b`` are both the folder ``description=a-b``; ``Large`` and ``large`` are one folder on macOS or
    Windows: the second run would find the first one's DONE and report its results as its own."""
    with pytest.raises(ConfigError, match="share one run folder") as info:
        expand({"description": values})
    shown = str(info.value).replace(".inf", "inf").lower()  # each as its override reads: true, 'true', .inf, 'inf'
    assert all(f"description={v}".lower() in shown or f"description={v!r}" in shown for v in values)


def test_summary_metrics_no_run_computed_are_named_not_dropped(tmp_path, base, capsys):
    """--metrics overlap_at_N over runs that evaluated only mse and pearson_delta: the summary has no overlap_at_N, and
    that is said (stderr and summary.json) instead of being left out without a word."""
    res = sweep(base, {"description": ["good", "bad"]}, tmp_path / "sw", runner=FakeRunner(), metrics=["mse", "overlap_at_N"],
                progress=False)
    assert [c.metric for c in res.comparisons] == ["mse"]
    assert "overlap_at_N is not in the summary: no finished run computed it" in capsys.readouterr().err
    assert json.loads((tmp_path / "sw" / "summary.json").read_text())["metrics_not_computed"] == ["overlap_at_N"]


def test_a_sweep_that_fails_while_writing_its_tables_leaves_the_earlier_ones_whole(tmp_path, base, monkeypatch):
    """results.csv was truncated first and then written row by row: a sweep stopped in between (killed, disk full) left
    a table of some rows that read as complete. It is now replaced whole or not at all."""
    out = tmp_path / "sw"
    sweep(base, {"description": ["good", "bad"]}, out, runner=FakeRunner(), progress=False)
    before = (out / "results.csv").read_bytes()

    def full(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", full)
    with pytest.raises(OSError):
        sweep(base, {"description": ["good", "bad"]}, out, runner=FakeRunner(), progress=False)
    assert (out / "results.csv").read_bytes() == before


def test_sweep_paired_test_is_over_seeds_and_keeps_its_false_positive_rate_when_runs_carry_seed_noise():
    """Two equally good variants, 3 seeds x 25 perturbations, each run shifted as a whole by its own training noise (sd 1,
    as large as the per-perturbation noise). Pooling the 75 (seed, perturbation) pairs as independent gave p < 0.05 in
    about 65% of such sweeps; the t-test over the 3 per-seed mean differences keeps it near 5% (binomial sd 1.5%)."""
    from distgen.pipeline.aggregate import paired_comparison

    rng = np.random.default_rng(7)

    def sweep(effect):
        rows = []
        for variant, shift in (("ref", 0.0), ("new", effect)):
            offset = rng.normal(0.0, 1.0, 3)
            rows += [{"variant": variant, "seed": s, "perturbation": f"P{p}", "mse": float(offset[s] + shift + rng.normal())}
                     for s in range(3) for p in range(25)]
        return paired_comparison(rows, "new", "ref", "mse")

    null = [sweep(0.0) for _ in range(200)]
    assert all(c.test == "t over seeds" and c.n_units == 3 and c.n_pairs == 75 for c in null)
    assert np.mean([c.p_value < 0.05 for c in null]) <= 0.09
    # a variant worse by 4 sd of the seed noise on every perturbation is found (mse: lower is better)
    worse = [sweep(4.0) for _ in range(50)]
    assert np.mean([c.p_value < 0.05 and c.better == "reference" for c in worse]) >= 0.7


@pytest.mark.parametrize(("grid", "said"), [({"train.seed": [0, 0]}, "'train.seed' lists the value 0 more than once"),
                                            ({"model.backbone.depth": [2, 3, 2]}, "'model.backbone.depth' lists the value 2 more than once")])
def test_a_grid_value_listed_twice_is_refused_as_a_repeat(grid, said):
    """train.seed=[0,0] was refused as two runs whose names 'differ only in characters a folder name cannot keep'."""
    with pytest.raises(ConfigError, match=said):
        expand(grid)


def test_a_grid_key_given_twice_on_the_command_line_is_refused(capsys):
    """--grid train.seed=[0,1] --grid train.seed=[2,3] ran seeds 2 and 3 only: the first axis was replaced without a word."""
    from distgen.cli import main

    assert main(["sweep", "unused.yaml", "--grid", "train.seed=[0,1]", "--grid", "train.seed=[2,3]", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "--grid train.seed is given twice" in err and "--grid 'train.seed=[0, 1, 2, 3]'" in err


def test_the_margin_comes_from_the_runs_replicate_spread(tmp_path, base):
    """A variant worse by 0.5 on mse, significantly: named where the runs' split-half replicate spread (eval/summary.json
    ceiling_band.std) is below 0.5; within a spread of 2 it is negligible (the single-run rule), and the
    margin and its source are recorded in summary.json and summary.md."""

    class WithBand(FakeRunner):
        def __init__(self, std):
            super().__init__()
            self.std = std

        def __call__(self, config, run, run_dir):
            code = super().__call__(config, run, run_dir)
            (run_dir / "eval" / "summary.json").write_text(json.dumps({"metrics": {"mse": {"ceiling_band": {"std": self.std}}}}))
            return code

    for std, said in ((0.1, "reference"), (2.0, "negligible")):  # 2: the interval (about 0.5 +- 0.001) lies within +-2
        out = tmp_path / f"sw{std}"
        res = sweep(base, {"description": ["good", "bad"], "train.seed": [0, 1]}, out, runner=WithBand(std),
                    metrics=["mse", "pearson_delta"], progress=False)
        cmp_mse, cmp_pd = res.comparisons
        assert cmp_mse.p_value < 0.05 and cmp_mse.better == "reference" and cmp_mse.verdict == said
        assert cmp_mse.margin == std and cmp_mse.margin_source == "replicate spread"
        assert cmp_pd.margin_source == "numerical tolerance"  # no band recorded for it
        saved = json.loads((out / "summary.json").read_text())["comparisons"][0]
        assert saved["verdict"] == said and saved["margin"] == std
        (line,) = [x for x in (out / "summary.md").read_text().splitlines() if x.startswith("| description=bad | mse |")]
        # the fake runs of every seed share their noise: one comparison over perturbations, said to be of these runs
        assert line.endswith(f"| {std:.2g} | {said}{' better (one seed: these runs)' if said == 'reference' else ''} |")
        html = (out / "report.html").read_text()
        assert ("<td>negligible</td>" in html) == (said == "negligible")


def test_runs_of_an_earlier_version_with_long_float32_dose_labels_pair_with_new_runs(tmp_path, base):
    """A sweep resumed across the dose-label change holds finished runs whose metrics.csv labels a float32 dose
    ``dexa@0.30000001192092896`` and new runs that label it ``dexa@0.3``: one perturbation, paired (its rows were unpaired,
    the comparison short of them)."""
    def runner(config, run, run_dir):
        rng = np.random.default_rng(run.seed)
        old = "bad" in run.variant  # as a run written by an earlier distgen
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "mse"])
            for p in ("dexa@0.30000001192092896" if old else "dexa@0.3", "dexa@10", "saha@3.299999952316284" if old else "saha@3.3"):
                w.writerow([p, 1.0 + (0.5 if old else 0.0) + rng.normal(0, 0.01)])
        return 0

    res = sweep(base, {"description": ["good", "bad"], "train.seed": [0, 1]}, tmp_path / "sw", runner=runner, metrics=["mse"],
                progress=False)
    (cmp,) = res.comparisons
    assert cmp.n_pairs == 2 * 3
    rows = list(csv.DictReader((tmp_path / "sw" / "results.csv").open()))
    assert {r["perturbation"] for r in rows} == {"dexa@0.3", "dexa@10", "saha@3.3"}
