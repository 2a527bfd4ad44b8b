"""Install the ``my-distgen-kernel`` plugin, see distgen discover it, and use its kernel by name.

1. ``pip install -c constraints/cpu.txt -e examples/plugin/my-distgen-kernel``
2. ``distgen components --kind kernels`` lists ``laplacian`` (provider my-distgen-kernel 0.1.0)
3. a config names it: ``model.distribution_loss.kernel.name=laplacian`` (scDFM's MMD term computed
   with the Laplacian kernel instead of the RBF), then build, train and sample as usual.

Steps 2 and 3 run in fresh Python processes: an interpreter sees packages installed after it started
only through a restart. Uninstall with ``pip uninstall my-distgen-kernel``.

Usage::

    python examples/plugin/run.py                  # install into this environment (editable), list, use
    python examples/plugin/run.py --target DIR     # install into DIR instead (pip --target); the environment is untouched
    python examples/plugin/run.py --tiny           # a tiny network, 2 training steps
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "my-distgen-kernel"
CONSTRAINTS = HERE.parents[1] / "constraints" / "cpu.txt"
TINY = ["model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1", "model.backbone.graph_k=5",
        "model.genes_per_step=64", "model.dynamics.solver.steps=2"]


def install(target: str | None) -> dict[str, str]:
    """pip-install the plugin (editable, or into ``target``); the environment for child processes."""
    env = dict(os.environ)
    if target is None:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), "-e", str(PLUGIN)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        return env
    with tempfile.TemporaryDirectory() as tmp:  # build from a copy: keeps build files out of the source tree
        src = shutil.copytree(PLUGIN, Path(tmp) / PLUGIN.name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, str(src)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(target).resolve()), *filter(None, [env.get("PYTHONPATH")])])
    return env


def use(tiny: bool) -> None:
    """In a fresh process: the plugin's kernel by name, on its own and inside a model config."""
    import torch

    import distgen

    if tiny:
        torch.set_num_threads(1)
    info = distgen.get_registry("kernels").info("laplacian")
    print(f"found kernel {info.name!r} from {info.provider} {info.version}: {info.summary}")

    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0, "test_frac": 0.9})
    x, conditions = data.data.table.X, data.data.conditions
    ctrl, pert = x[torch.from_numpy(conditions == "control")][:64], x[torch.from_numpy(conditions == "KLF1+MAP2K6")][:64]
    full = torch.ones(1, 64, dtype=torch.bool)
    for kernel in ("rbf", "laplacian"):
        enc = distgen.build_component("encoders", {"name": "kme", "kernel": {"name": kernel}}, n_genes=data.info.n_genes)
        print(f"MMD^2 KLF1+MAP2K6 vs control, {kernel:>9} kernel: {enc.distance(pert[None], full, ctrl[None], full).item():.4f}")

    overrides = ["model.distribution_loss.kernel.name=laplacian"] + (TINY if tiny else [])
    doc = distgen.load_config("scdfm-small", overrides)
    model = distgen.build(doc, data.info, seen_perturbations=data.seen_perturbations())
    print(f"scdfm-small with distribution_loss = {type(model.distribution_loss).__name__}"
          f"({type(model.distribution_loss.kernel).__name__})")
    distgen.fit(model, data.train_table, config=doc, set_size=8 if tiny else 24, steps=2 if tiny else 100, progress=False)  # the preset's recipe
    cells = model.eval().predict(ctrl[None, :16], full[:, :16], data.data.labels_for(["KLF1+MAP2K6"]))
    print(f"trained and sampled: {tuple(cells.shape)} cells, finite: {bool(torch.isfinite(cells).all())}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", help="install into this folder (pip --target) instead of the current environment")
    p.add_argument("--tiny", action="store_true", help="tiny network, 2 training steps: seconds on a CPU")
    p.add_argument("--use", action="store_true", help=argparse.SUPPRESS)  # step 3, in the fresh process
    args = p.parse_args(argv)
    if args.use:
        use(args.tiny)
        return 0
    env = install(args.target)
    print("$ distgen components --kind kernels", flush=True)
    subprocess.run([sys.executable, "-m", "distgen", "components", "--kind", "kernels"], env=env, check=True)
    subprocess.run([sys.executable, __file__, "--use", *(["--tiny"] if args.tiny else [])], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
