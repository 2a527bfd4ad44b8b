"""docs/your_data.md runs as written on a small synthetic file with its columns (tiny networks, 3 steps).

Every ```yaml block named by its first line (``# my_x.yaml``) is written to that file; every line of a
```bash block is a command run in order (in-process for ``distgen``, a subprocess for ``python -m``);
a line commented ``# stops: ...`` must fail. ```python blocks run in a subprocess, shrunk by ``SHRINK``.
The fast test checks that the page and this harness agree; the slow one runs everything.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "your_data.md"

#: Tiny networks per preset, appended to every ``distgen run`` / ``distgen train`` of a config with that base.
TINY = {
    "perturbdiff-small": ["train.steps=3", "model.backbone.dim=16", "model.backbone.depth=1", "model.conditioner.part_dim=8",
                          "model.conditioner.dim=16"],
    "scdfm-small": ["train.steps=3", "model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1",
                    "model.genes_per_step=32", "model.predict_genes=32", "model.dynamics.solver.steps=2", "data.set_size=8"],
}
FAST_RUN = ["--metrics", "mse,pearson_delta,discrimination_score_l1,edistance", "--no-plots", "--no-progress"]
#: Python-block text -> its tiny twin (every left side must occur in some block).
SHRINK = {
    'distgen.build(doc, data)': 'distgen.build(doc, data, overrides=["model.backbone.dim=16", "model.backbone.depth=1", '
                                '"model.conditioner.part_dim=8", "model.conditioner.dim=16"])',
    "config=doc, minutes=10)": "config=doc, minutes=10, steps=3, progress=False)",
    '"runs/py/eval")': '"runs/py/eval", metric_names=["mse", "edistance"], make_plots=False, progress=False)',
}


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", PAGE.read_text(), re.S)


def yaml_files() -> dict[str, str]:
    out = {}
    for b in blocks("yaml"):
        first = b.splitlines()[0]
        assert re.fullmatch(r"# [\w.-]+\.yaml", first), f"a yaml block of your_data.md must start with '# NAME.yaml': {first!r}"
        out[first[2:]] = b
    return out


def commands() -> list[str]:
    return [ln.strip() for b in blocks("bash") for ln in b.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def write_example(path: Path, n: int = 12, seed: int = 0) -> None:
    """Raw counts of a small CRISPR screen: NT controls, 4 knock-outs and 2 doubles x 3 cell types x 3 donors."""
    rng = np.random.default_rng(seed)
    genes = ["G1", "G2", "G3", "G4"] + [f"gene{i}" for i in range(56)]
    base = rng.gamma(2.0, 1.0, len(genes))
    effect = {"NT": np.ones(len(genes))}
    for i, g in enumerate(genes[:4]):
        e = np.ones(len(genes))
        e[rng.choice(np.arange(4, len(genes)), 6, replace=False)] = rng.choice([0.3, 3.0], 6)
        e[i] = 0.1
        effect[g] = e
    effect["G1+G2"], effect["G3+G4"] = effect["G1"] * effect["G2"], effect["G3"] * effect["G4"]
    rows, xs = [], []
    for cond, e in effect.items():
        for ct, f in {"T": 1.0, "B": 1.3, "Mono": 0.8}.items():
            for donor, h in {"d1": 1.0, "d2": 1.1, "d3": 0.9}.items():
                xs.append(rng.poisson(base * e * f * h * 3, (n, len(genes))))
                rows += [(cond, ct, donor)] * n
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type", "donor"], index=[f"cell{i}" for i in range(len(rows))])
    obs["assignment_confidence"] = rng.uniform(0.3, 1.0, len(obs)).round(3)
    ad.AnnData(np.concatenate(xs).astype(np.float32), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)


def shrunk(line: str, files: dict[str, str]) -> list[str]:
    """The argv of a documented command at tiny scale."""
    argv = shlex.split(line, comments=True)
    if argv[:2] in (["distgen", "run"], ["distgen", "train"]):
        base = yaml.safe_load(files[argv[2]])["base"]
        out = argv.index("--out")
        argv = argv[:out] + TINY[base] + argv[out:] + (FAST_RUN if argv[1] == "run" else ["train.progress=false"])
    if argv[:2] == ["distgen", "evaluate"]:
        argv += ["--metrics", "mse,pearson_delta", "--no-plots", "--quiet"]
    return argv


def test_every_command_and_block_is_covered():
    files = yaml_files()
    assert set(files) == {"my_celltype.yaml", "my_donor.yaml", "my_combo.yaml", "my_unseen.yaml"}
    for name, text in files.items():
        assert yaml.safe_load(text)["base"] in TINY, f"{name}: no tiny twin for its preset"
    known = (["distgen", "run"], ["distgen", "train"], ["distgen", "predict"], ["distgen", "evaluate"], ["python", "-m"])
    cmds = commands()
    assert len(cmds) >= 8
    for c in cmds:
        argv = shlex.split(c, comments=True)
        if argv[0] == "mv":
            assert len(argv) == 3, f"{c!r}: the harness runs 'mv FILE NEW_NAME' only"
            continue
        assert argv[:2] in known, f"your_data.md runs {c!r}, which this harness does not know how to run"
        if argv[1] in ("run", "train"):
            assert argv[2] in files, f"{c!r} uses a config the page does not define"
    code = "\n".join(blocks("python"))
    missing = [k for k in SHRINK if k not in code]
    assert not missing, f"your_data.md's python blocks changed; update SHRINK: {missing}"


def test_the_documented_configs_validate(tmp_path, monkeypatch):
    from distgen.config import load_config
    from distgen.data.section import data_section
    from distgen.pipeline.predict import predict_section
    from distgen.train.options import train_options

    monkeypatch.chdir(tmp_path)
    write_example(tmp_path / "my_data.h5ad")
    for name, text in yaml_files().items():
        (tmp_path / name).write_text(text)
        doc = load_config(name)
        data_section(doc["data"])
        train_options(doc.get("train"))
        predict_section(doc)


@pytest.mark.slow
def test_your_data_page_runs(tmp_path, monkeypatch):
    from distgen.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    write_example(tmp_path / "my_data.h5ad")
    write_example(tmp_path / "my_new.h5ad", n=6, seed=1)  # section 7: another plate measured like my_data.h5ad
    files = yaml_files()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for line in commands():
        argv = shrunk(line, files)
        if argv[0] == "mv":  # section 7: the training file moves away (and back)
            shutil.move(argv[1], argv[2])
            continue
        if argv[0] == "python":
            proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
            continue
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                rc = main(argv[1:])
            except SystemExit as e:
                rc = int(e.code or 0)
        if "# stops" in line:  # "stops at once, exit status 2: ... with `QUOTED ...`": the message as the page quotes it
            (quoted,) = re.findall(r"with `(distgen run: config error: [^`]*?) \.\.\.`", PAGE.read_text())
            said = " ".join(err.getvalue().split())
            assert rc == 2 and " ".join(quoted.split()) in said, f"{line} should stop at pre-flight with the quoted message: {said}"
            continue
        assert rc == 0, f"{line} failed: {err.getvalue()[-3000:]}"
    assert (tmp_path / "runs" / "celltype" / "eval" / "report.html").exists()
    donor = (tmp_path / "runs" / "donor" / "eval" / "summary.md").read_text()
    assert "Undefined scores" in donor and "fewer than 2 conditions" not in donor  # six conditions per donor context
    man = (tmp_path / "runs" / "celltype" / "train" / "manifest.json").read_text()
    assert '"filter"' in man and '"cells_kept"' in man
    pred = ad.read_h5ad(tmp_path / "runs" / "ct" / "pred.h5ad")
    assert pred.n_obs > 0
    new = ad.read_h5ad(tmp_path / "runs" / "ct" / "new_counts.h5ad")  # section 7: --data, two perturbations, in counts
    kinds = new.obs["distgen_kind"].astype(str) == "predicted"
    assert set(new.obs["target"].astype(str)[kinds]) == {"G1", "G1+G2"} and new.uns["distgen"]["scale"] == "counts"
    for first, again in (("new_pred", "new_pred_again"), ("pred", "pred_again")):  # section 7: without the training file, the same
        a, b = (ad.read_h5ad(tmp_path / "runs" / "ct" / f"{name}.h5ad") for name in (first, again))
        np.testing.assert_array_equal(np.asarray(a.X.todense() if hasattr(a.X, "todense") else a.X),
                                      np.asarray(b.X.todense() if hasattr(b.X, "todense") else b.X))

    code = "\n".join(blocks("python"))
    for old, new in SHRINK.items():
        code = code.replace(old, new)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (tmp_path / "runs" / "py" / "eval" / "summary.md").exists()
