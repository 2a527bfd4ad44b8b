import itertools
import math

import pytest
import torch

from distgen.train.schedule import lr_factor, make_scheduler


def test_warmup_is_linear_and_reaches_one():
    f = [lr_factor(s, 100, warmup=4) for s in range(5)]
    assert f[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8]) and f[4] == pytest.approx(1.0)


def test_cosine_ends_at_min_ratio_and_is_monotone():
    f = [lr_factor(s, 50, warmup=5, min_ratio=0.1) for s in range(5, 50)]
    assert f[0] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(f))
    mid = lr_factor(5 + 22, 50, warmup=5, min_ratio=0.0)
    assert mid == pytest.approx(0.5 * (1 + math.cos(math.pi * 22 / 44)))


def test_constant_after_warmup():
    assert [lr_factor(s, 10, warmup=2, kind="constant") for s in range(2, 10)] == [1.0] * 8


def test_scheduler_drives_optimizer_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = make_scheduler(opt, 10, warmup=1)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0)


def test_plateau_holds_the_peak_before_the_cosine():
    f = [lr_factor(s, 100, warmup=10, min_ratio=0.1, plateau_ratio=0.2) for s in range(100)]
    assert f[10:30] == [1.0] * 20 and f[30] == pytest.approx(1.0) and f[31] < 1.0 and f[-1] == pytest.approx(0.1)


def test_cosine_floor_is_perturbdiffs_schedule():
    # warm-up step/warmup from 0, plateau int(0.1 * total), then max(min, half cosine over total - warmup - plateau)
    total, warm = 1000, 200
    f = [lr_factor(s, total, warmup=warm, kind="cosine_floor", min_ratio=0.1, plateau_ratio=0.1) for s in range(total)]
    assert f[0] == 0.0 and f[100] == pytest.approx(0.5) and f[200:300] == [1.0] * 100
    s = 650
    assert f[s] == pytest.approx(0.5 * (1 + math.cos(math.pi * (s - 300) / 700)))
    assert f[-1] == pytest.approx(0.1) and min(f[200:]) == pytest.approx(0.1)
    floor_from = next(i for i in range(300, total) if f[i] == 0.1)  # clamped, not rescaled: flat once the cosine dips below
    assert all(v == 0.1 for v in f[floor_from:]) and floor_from < 900
