"""JSON and markdown output; the markdown goes into this harness's section of ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks.harness.measure import describe, when

SECTION = "## Scale harness: speed, memory, scaling (issue #11)"
INTRO = """Measured by the one harness, `python -m benchmarks run --mode {tiny|small|full}` (also `distgen bench`).
Each block below names its hardware and the exact command. Timings are medians after warm-ups; training
speed uses in-memory random batches (the model's cost), the streaming rows use synthetic atlases on disk
(`distgen.data.large_synthetic`) read by `distgen.data.streaming.StreamingSetSampler`. See `docs/scale.md`.
"""


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(res: dict[str, Any], command: str) -> str:
    """The markdown block of one run."""
    which = f", sections {', '.join(res['sections'])}" if res.get("sections") else ""
    out = [f"### Mode `{res['mode']}`{which} on {res['device'].upper()}", "", f"Hardware: {describe(res['hardware'])}.", "",
           *([f"Measured {when(res['started'], res.get('ended'))}.", ""] if res.get("started") else []), f"Command: `{command}`", ""]
    tr = res.get("train")
    if isinstance(tr, list):
        rows = [[r["preset"], r["size"], r.get("genes"), f"{r.get('sets')} x {r.get('set_size')}", r.get("params"), r.get("precision"),
                 r.get("steps_per_s"), r.get("cells_per_s"), r.get("achieved_tflops"), r.get("mfu"), r.get("skipped") or r.get("error") or ""] for r in tr]
        out += ["Training (optimizer steps on random set batches):", "",
                _table(["preset", "size", "genes", "sets x cells", "params", "precision", "steps/s", "cells/s", "TFLOP/s", "MFU", "note"], rows), ""]
    sa = res.get("sampling")
    if isinstance(sa, list):
        rows = [[r["preset"], r.get("steps"), r.get("nfe"), r.get("seconds"), r.get("cells_per_s"), r.get("skipped") or r.get("error") or ""] for r in sa]
        out += ["Sampling (`predict`, 2 sets) against the number of function evaluations:", "",
                _table(["preset", "steps", "NFE", "seconds", "cells/s", "note"], rows), ""]
    sc = res.get("scaling")
    if isinstance(sc, list):
        rows = []
        for r in sc:
            if "error" in r:
                rows.append([r["preset"], "-", None, r["error"]])
                continue
            for key in ("genes", "set_size"):
                pts = ", ".join(f"{p[key]}: {p['step_s'] * 1e3:.1f} ms" for p in r[key]["points"])
                rows.append([r["preset"], key, r[key]["exponent"], pts])
        out += ["Scaling of the training step (cost ~ x^k, least-squares fit in log-log):", "", _table(["preset", "x", "k", "step time"], rows), ""]
    st = res.get("streaming")
    if isinstance(st, dict) and "epochs" in st:
        ep = st["epochs"]
        rows = [[p["cells"], p["streamed_cells"], p["generate_s"] or "(cached)", p["open_s"], p["epoch_s"], p["epoch_cpu_s"], p["cells_per_s"], p["peak_rss_mb"]]
                for p in ep["points"]]
        out += [f"Streaming epochs (one pass over every perturbed cell, sets of {res['config']['stream_set_size']}, "
                f"{res['config']['stream_sets']} sets per batch, {res['config']['stream_genes']} genes, data only); epoch CPU time ~ cells^{ep['exponent']:.3f} "
                f"(wall: cells^{ep.get('exponent_wall', float('nan')):.3f}; the exponent is fitted on the reading process's CPU time because wall time "
                "on a shared machine includes other processes' load):", "",
                _table(["cells in file", "perturbed cells streamed", "write s", "open s", "epoch s (wall)", "epoch s (CPU)", "cells/s (wall)", "peak RSS MB"], rows), ""]
        rows = [[w["preset"], w.get("steps"), w.get("num_workers"), w.get("step_s"), w.get("wait_s"), w.get("wait_fraction", w.get("error"))] for w in st.get("wait", [])]
        if rows:
            out += ["Training from disk (DataLoader workers read ahead); time blocked waiting for the next batch:", "",
                    _table(["preset", "steps", "workers", "step s", "wait s", "wait fraction"], rows), ""]
    ev = res.get("evaluation")
    if isinstance(ev, dict):
        note = ev.get("skipped") or ev.get("error") or f"`{ev.get('command')}` (Norman K562 pair, additive baseline)"
        out += [f"Evaluation against cell-eval: {note}.", ""]
        if isinstance(ev.get("results"), list) and ev["results"] and isinstance(ev["results"][0], dict):
            keys = list(ev["results"][0])
            out += [_table(keys, [[r.get(k) for k in keys] for r in ev["results"]]), ""]
    for name in ("train", "sampling", "scaling", "streaming"):
        if isinstance(res.get(name), dict) and "error" in res[name]:
            out += [f"Section `{name}` failed: `{res[name]['error']}`", ""]
    rows = [[c["check"], c["value"], "pass" if c["passed"] else ("FAIL" if c["enforced"] else "not met (reported)")] for c in res.get("checks", [])]
    out += ["Bounds:", "", _table(["check", "value", "result"], rows), ""]
    return "\n".join(out)


def write_json(res: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2, default=str))
    return path


def update_docs(block: str, mode: str, path: str | Path = "docs/benchmarks.md") -> Path:
    """Put ``block`` into this harness's section of ``path``, replacing the earlier block of ``mode``."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    begin, end = f"<!-- scale-harness:{mode}:begin -->", f"<!-- scale-harness:{mode}:end -->"
    wrapped = f"{begin}\n{block.rstrip()}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: wrapped, text, flags=re.S)
    elif SECTION in text:
        head, _, tail = text.partition(SECTION)
        nxt = re.search(r"^## ", tail, flags=re.M)
        cut = nxt.start() if nxt else len(tail)
        text = head + SECTION + tail[:cut].rstrip() + "\n\n" + wrapped + "\n\n" + tail[cut:].lstrip()
    else:
        text = text.rstrip() + f"\n\n{SECTION}\n\n{INTRO}\n{wrapped}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path
