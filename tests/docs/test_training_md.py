"""docs/training.md's table "The run directory" names the files a run folder holds: ``distgen train`` writes each
unconditional row, nothing the table does not name, and each checkpoint holds the files its row lists; the
run folder of ``distgen.fit(..., run_dir=)`` holds the same files ("writes the same run folder as ``distgen train``")."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from distgen.cli import main

from ..train.conftest import TINY_GENERATOR
from .conftest import ROOT

PAGE = ROOT / "docs" / "training.md"

CONFIG = {
    "model": TINY_GENERATOR,
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8},
    "train": {"steps": 2, "sets_per_batch": 2, "checkpoint_every": 1, "log_every": 1, "progress": False, "ema_decay": 0.9},
}


def _expand(name: str) -> list[str]:
    """``optimizer.{safetensors,json}`` -> both names."""
    m = re.search(r"\{([^}]*)\}", name)
    return [name[: m.start()] + alt + name[m.end():] for alt in m.group(1).split(",")] if m else [name]


def run_directory_rows() -> list[tuple[list[str], str]]:
    """(the names of a row's first column, its content) of the table under '## The run directory'."""
    text = PAGE.read_text()
    section = text[text.index("\n## The run directory\n"):]
    section = section[: section.index("\n\n", section.index("| file |"))]
    rows = []
    for line in section.splitlines():
        cells = line.split(" | ")
        if not line.startswith("| `") or len(cells) < 2:
            continue
        rows.append((re.findall(r"`([^`]+)`", cells[0]), " | ".join(cells[1:])))
    return rows


def _conditional(content: str) -> bool:
    return content.startswith("only when") or " when the `tensorboard` package is installed" in content


def _top_level(run: Path) -> set[str]:
    return {p.name + ("/" if p.is_dir() else "") for p in run.iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rundir")
    (root / "cfg.yaml").write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(root / "cfg.yaml"), "--out", str(root / "run")]) == 0
    return root / "run"


def test_the_table_names_every_file_of_a_run_folder_and_each_unconditional_one_is_there(trained):
    rows = run_directory_rows()
    assert len(rows) >= 8, rows
    named = {n.split("/")[0] + ("/" if "/" in n else "") for names, _ in rows for n in names}
    there = _top_level(trained)
    assert there <= named, f"the run folder holds {sorted(there - named)}, which docs/training.md's table does not name"
    for names, content in rows:
        for name in names:
            top = name.split("/")[0] + ("/" if "/" in name else "")
            if name == "tensorboard/":
                assert (top in there) == (importlib.util.find_spec("tensorboard") is not None), content
            elif not _conditional(content):
                assert top in there, f"docs/training.md lists {name}, which a `distgen train` run folder lacks"
    assert (trained / "checkpoints" / "latest").read_text().strip() == "step_00000002"


def test_a_checkpoint_holds_the_files_its_row_lists(trained):
    (content,) = [c for names, c in run_directory_rows() if names == ["checkpoints/step_XXXXXXXX/"]]
    listed = {f for n in re.findall(r"`([^`]+)`", content) if "." in n and "_decay" not in n for f in _expand(n)}
    for step in sorted((trained / "checkpoints").glob("step_*")):
        assert re.fullmatch(r"step_\d{8}", step.name)
        assert {p.name for p in step.iterdir()} == listed, step  # ema_decay is set here, so ema.safetensors too


def test_fit_with_run_dir_writes_the_files_distgen_train_writes(trained, tmp_path):
    import distgen

    doc = distgen.load_config(str(trained / "config.yaml"))
    data = distgen.load_data(**doc["data"])
    model = distgen.build(doc, data)
    distgen.fit(model, data, config=doc, run_dir=tmp_path / "x")
    assert _top_level(tmp_path / "x") == _top_level(trained)
    assert {p.name for p in (tmp_path / "x" / "checkpoints" / "step_00000002").iterdir()} == {
        p.name for p in (trained / "checkpoints" / "step_00000002").iterdir()}


def test_the_quoted_progress_and_estimate_lines_are_what_the_code_prints():
    """The plain progress line and the estimate after three steps, as the page quotes them, from the code's own format."""
    from distgen.train.logger import LINE_PROGRESS_SECONDS, LineProgress, duration
    from distgen.train.trainer import ESTIMATE_AFTER

    text = " ".join(PAGE.read_text().split())
    (line,) = re.findall(r"`(train: step \d+/\d+ [^`]+)`", text)
    step, total, loss, per = re.fullmatch(r"train: step (\d+)/(\d+) \(\d+%\), loss ([\d.]+), ([\d.]+) s/step, .*", line).groups()
    now = [0.0]
    bar = LineProgress(int(total), 0, clock=lambda: now[0])
    bar.set_postfix(loss=loss)
    now[0], bar.n = int(step) * float(per), int(step)
    assert bar.line(now[0]) == line
    assert re.search(rf"a run shorter than a (minute|{LINE_PROGRESS_SECONDS:g} s) prints none", text) and LINE_PROGRESS_SECONDS == 60
    for page in (PAGE, ROOT / "docs" / "your_data.md"):  # train: ~P s/step, L more steps: about D; train.minutes=M stops it near step S
        for per, left, about, minutes, near in re.findall(
                r"train: ~([\d.]+) s/step, (\d+) more steps: about ([\d.]+ \w+); train\.minutes=(\d+) stops it near step (\d+)",
                " ".join(page.read_text().split())):
            p, done = float(per), ESTIMATE_AFTER  # the estimate comes after the first three steps
            assert duration(p * int(left)) == about, (page.name, about)
            assert done + int(int(minutes) * 60 / p) == int(near), (page.name, near)


def test_the_default_prediction_cap_the_pages_state():
    from distgen.pipeline.predict import DEFAULT_MAX_CELLS

    caps = [int(n) for page in (PAGE, ROOT / "docs" / "your_data.md")
            for n in re.findall(r"the cap is (\d+)", " ".join(page.read_text().split()))]
    assert len(caps) == 2 and set(caps) == {DEFAULT_MAX_CELLS}, caps


def test_the_run_config_names_the_bundled_datasets():
    from distgen.data.section import BUNDLED

    (listed,) = re.findall(r"dataset: \w+ +# bundled: ([\w, ]+);", PAGE.read_text())
    assert tuple(listed.split(", ")) == BUNDLED
