"""Training progress: a tqdm bar on a terminal, plain lines in a log file (a batch job's output)."""

import io

from distgen.train import fit, logger
from distgen.train.logger import LineProgress, duration, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_come_at_most_once_per_interval_with_step_loss_and_time_left():
    out, clock = io.StringIO(), FakeClock()
    bar = LineProgress(total=1000, initial=0, interval=60.0, file=out, clock=clock)
    for _ in range(10):  # 10 steps of 2 s: 20 s, under the interval
        clock.t += 2.0
        bar.set_postfix(loss="0.5")
        bar.update(1)
    assert out.getvalue() == ""
    for _ in range(20):  # 20 more: 60 s since the start
        clock.t += 2.0
        bar.set_postfix(loss="0.25")
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    # 30 of 1000 steps at 2 s each: 970 steps left, 1940 s = 32.3 min
    assert lines[0].startswith("train: step 30/1000 (3%)")
    assert "2 s/step" in lines[0] and "about 32.3 min left" in lines[0]
    assert "loss 0.25" in lines[0]  # the step's own loss
    for _ in range(30):
        clock.t += 2.0
        bar.update(1)
    assert len(out.getvalue().splitlines()) == 2


def test_a_resumed_run_counts_from_its_step_and_times_only_the_new_steps():
    out, clock = io.StringIO(), FakeClock()
    bar = LineProgress(total=100, initial=90, interval=1.0, file=out, clock=clock)
    clock.t += 5.0
    bar.update(1)
    line = out.getvalue().strip()
    assert line.startswith("train: step 91/100 (91%)")
    assert "5 s/step, about 45 s left" in line


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert isinstance(progress_bar(10, 0, True, file=io.StringIO()), LineProgress)
    bar = progress_bar(10, 0, True, file=Terminal())
    assert not isinstance(bar, LineProgress) and not bar.disable
    bar.close()
    off = progress_bar(10, 0, False, file=io.StringIO())
    assert not isinstance(off, LineProgress) and off.disable


def test_duration_units():
    assert duration(45) == "45 s"
    assert duration(800) == "13.3 min"
    assert duration(7560) == "2.1 h"


def test_training_into_a_log_file_prints_progress_lines(table, make_model, capsys, monkeypatch):
    monkeypatch.setattr(logger, "LINE_PROGRESS_SECONDS", 0.0)
    fit(make_model(), table, set_size=4, steps=3, sets_per_batch=4, lr=3e-3, progress=True)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    lines = [ln for ln in err.splitlines() if ln.startswith("train: step")]
    assert [ln.split(",")[0] for ln in lines] == ["train: step 1/3 (33%)", "train: step 2/3 (67%)", "train: step 3/3 (100%)"]
    assert all("loss " in ln for ln in lines)
    assert "\r" not in err
