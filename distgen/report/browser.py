"""A screenshot of a report page with a headless Chromium/Chrome, when one is installed (tests, README figure).

Nothing in distgen needs a browser; this only drives one that is already there
(``apt-get install chromium`` on Debian/Ubuntu). ``DISTGEN_BROWSER`` names a binary to use instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

#: Headless, offline, no first-run or background traffic, a throw-away profile (added per call).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio")


def find_browser() -> str | None:
    """Path of a Chromium-family browser (``DISTGEN_BROWSER`` first), or None."""
    named = os.environ.get("DISTGEN_BROWSER")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: str | Path, png: str | Path, width: int = 1100, height: int = 900, timeout: float = 120.0) -> Path:
    """Render ``page`` (a local HTML file) at ``width x height`` CSS pixels into ``png``."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium-family browser found (install one, e.g. `apt-get install chromium`, "
                                "or name it in DISTGEN_BROWSER)")
    page, png = Path(page).resolve(), Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="distgen-browser-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()]
        res = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {res.returncode}): {res.stderr.strip()[-500:]}")
    return png


def shrink(png: str | Path, width: int, colors: int = 256) -> Path:
    """Scale ``png`` down to ``width`` pixels and reduce its palette (a small file for the docs); needs Pillow."""
    from PIL import Image

    png = Path(png)
    with Image.open(png) as src:
        rgb = src.convert("RGB")
    if rgb.width > width:
        rgb = rgb.resize((width, round(rgb.height * width / rgb.width)), Image.Resampling.LANCZOS)
    rgb.quantize(colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(png, optimize=True)
    return png
