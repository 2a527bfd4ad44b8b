"""``distgen train``: train a config into a run directory (also under ``torchrun``)."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  distgen train scdfm-small --out runs/scdfm                       # a preset
  distgen train my.yaml train.steps=500 train.lr=3e-4 --out runs/a   # dotted overrides
  distgen train my.yaml --out runs/a --resume                      # continue a killed run exactly
  torchrun --nproc-per-node 4 -m distgen train my.yaml --out runs/ddp          # DDP on 4 GPUs
  torchrun --nproc-per-node 8 -m distgen train my.yaml train.strategy=fsdp --out runs/big
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
      -m distgen train my.yaml --out runs/multi                    # multi-node

The run directory gets config.yaml (resolved), manifest.json, split.json, metrics.csv,
checkpoints/ and tensorboard/ (when tensorboard is installed). Only rank 0 writes.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a config or preset into a run directory",
        description="Train the model of CONFIG (preset name or YAML) on its data section, with checkpoints that resume exactly. "
        "Under torchrun every rank runs this command; gradients are synchronised with DDP (or FSDP).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="preset name (distgen components lists presets) or a YAML config path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=100 model.backbone.depth=2")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from the newest checkpoint in --out (or from CHECKPOINT)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from distgen.train.run import train_run

    resume, overrides = resume_and_overrides(args)
    res = train_run(args.config, args.out, overrides, resume=resume)  # errors: the boundary, with each error's own exit code
    from distgen.train.distributed import env_from_torchrun

    if env_from_torchrun().is_main:
        if not res.losses and not res.stopped_by_budget and not res.stopped_early:  # resumed at or past train.steps ("last loss n/a")
            where = "its train.steps" if res.step == res.train_steps else f"past train.steps={res.train_steps}"
            print(f"nothing trained: the run is already at step {res.step}, {where}; to continue it, resume with a train.steps "
                  f"above {res.step} (e.g. train.steps={2 * res.step}); checkpoint {res.checkpoint}")
            return 0
        stop = " (early stop)" if res.stopped_early else ""
        diverged = f" (DIVERGED at step {res.diverged['step']:.0f}: loss {res.diverged['loss']:.4g})" if res.diverged else ""
        last = f"{res.losses[-1]:.4g}" if res.losses else "n/a"
        print(f"trained to step {res.step}{stop}; last loss {last}{diverged}; checkpoint {res.checkpoint}")
    return 0


def resume_and_overrides(args: argparse.Namespace) -> tuple[bool | str, list[str]]:
    """``--resume key=value`` is ``--resume`` followed by an override, not a checkpoint named ``key=value``."""
    from distgen.config import check_repeated_overrides

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume and not __import__("os").path.exists(resume):
        return True, check_repeated_overrides([*overrides, resume])
    return resume, check_repeated_overrides(overrides)
