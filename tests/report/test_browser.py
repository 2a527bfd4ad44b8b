"""A real browser opens the report from disk and draws it (slow; skipped where no Chromium-family browser is installed)."""

import numpy as np
import pytest

from distgen.report import write_report
from distgen.report.browser import find_browser, screenshot, shrink

from .tiny import tiny_inputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if find_browser() is None:
        pytest.skip("no Chromium-family browser installed (e.g. apt-get install chromium)")
    return write_report(tiny_inputs(), tmp_path_factory.mktemp("report") / "report.html")


def _pixels(png):
    import matplotlib.image as mpimg

    return (mpimg.imread(png)[..., :3] * 255).round().astype(int)


def test_browser_draws_the_page_and_its_figures(page, tmp_path):
    px = _pixels(screenshot(page, tmp_path / "shot.png", 1100, 1400))
    assert px.shape[:2] == (1400, 1100)
    ink = (px < 235).any(-1).mean()
    assert ink > 0.02, f"page looks blank ({ink:.1%} non-white pixels)"
    # the model's colour appears only inside the embedded figures: they were decoded and drawn
    model = (np.abs(px - np.array([0, 114, 178])).max(-1) < 40).sum()
    assert model > 200, f"{model} model-coloured pixels: the figures did not render"


def test_screenshot_shrinks_for_the_docs(page, tmp_path):
    png = shrink(screenshot(page, tmp_path / "shot.png", 1100, 900), 550)
    assert _pixels(png).shape[:2] == (450, 550)
