"""The streaming block of docs/scale.md runs as written on a small synthetic atlas (tiny network, 2 steps), and the
prediction the text after it names (``predict_to_disk(model, cells, ...)``) scores with ``distgen evaluate``."""

import re

from .conftest import ROOT, missing_targets, run_block, shrunk

#: Each text of the block -> its tiny twin; every left side must occur, so a rewording fails here instead of going untested.
SHRINK = {
    '"/data/atlas.h5ad"': '"atlas.h5ad"',
    "set_size=256, sets_per_batch=32, num_workers=4": "set_size=8, sets_per_batch=2, num_workers=0",
    'build("perturbdiff", source.info)': 'build("perturbdiff-small", source.info, overrides=["model.backbone.dim=16", '
                                          '"model.backbone.depth=1", "model.conditioner.part_dim=8", "model.conditioner.dim=16", '
                                          '"model.dynamics.sampler.start_step=2"])',
    'TrainOptions(steps=200_000, sets_per_batch=32, precision="auto")': 'TrainOptions(steps=2, sets_per_batch=2, precision="auto", progress=False)',
}
ATLAS = ("from distgen.data.large_synthetic import write_large_synthetic\n"
         "write_large_synthetic('atlas.h5ad', n_cells=1200, n_genes=40, n_perturbations=10, n_contexts=2, n_batches=2, layout='grouped')\n")
#: What the page's text says comes next: the prediction and its truth of the split's test part, then distgen evaluate.
PREDICT = (
    "\nfrom distgen.data.streaming import predict_to_disk\n"
    'predict_to_disk(model, cells, "pred.h5ad", split=split, part="test", real="real.h5ad", set_size=8, max_cells=8)\n'
    "from distgen.cli import main\n"
    'assert main(["evaluate", "--pred", "pred.h5ad", "--real", "real.h5ad", "--out", "ev", "--metrics", "mse", "--no-plots", "--quiet"]) == 0\n'
    "print('SCALE OK')\n"
)


def scale_python_block() -> str:
    text = (ROOT / "docs" / "scale.md").read_text()
    return next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "StreamBatches(" in b)


def test_the_scale_block_is_the_one_this_test_shrinks():
    missing = missing_targets(scale_python_block(), SHRINK)
    assert not missing, f"docs/scale.md's streaming block changed; update SHRINK in {__file__}: {missing}"
    assert "predict_to_disk(model, cells," in (ROOT / "docs" / "scale.md").read_text()


def test_the_scale_streaming_block_runs_and_its_prediction_scores(tmp_path):
    """A tiny perturbdiff-small streamed 2 steps, predicted from disk and scored: about 5 s."""
    code = ATLAS + shrunk(scale_python_block(), SHRINK) + PREDICT
    proc = run_block(code, tmp_path, {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "SCALE OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (tmp_path / "runs" / "pd" / "metrics.csv").exists() and (tmp_path / "ev" / "summary.json").exists()
