"""``distgen sweep``: an ablation grid, run resumably, aggregated with paired statistics."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  distgen sweep scdfm-small --grid model.distribution_weight=[0.0,0.5] --grid train.seed=[0,1,2] --out sweeps/mmd
  distgen sweep my_sweep.yaml --out sweeps/enc --jobs 2         # grid read from the file's `sweep:` section
  distgen sweep my_sweep.yaml train.steps=50 --out sweeps/short # base overrides for every run, after the config
  distgen sweep my_sweep.yaml --out sweeps/enc                  # again: finished runs are skipped,
                                                                # interrupted ones resume from their checkpoint
  distgen sweep scdfm-small --variant preset --variant ot model.coupling.name=exact_ot --grid train.seed=[0,1] --out sweeps/ot
                                                                # named variants, one factor at a time: ot vs preset

A grid in YAML, next to the base config:
  base: scdfm-small
  sweep:
    grid: {model.population_encoder.name: [kme, set_transformer], train.seed: [0, 1, 2]}
    reference: name=kme

An ablation (one factor at a time, not a product) as named variants:
  base: scdfm-small
  sweep:
    variants:
      preset: []                                   # the config as written: the reference (the first variant)
      ot: model.coupling.name=exact_ot
      energy: model.distribution_loss.kernel.name=energy
    seeds: [0, 1, 2]
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run an ablation grid and aggregate it (mean +/- sd, paired tests, plots)",
        description="Run every combination of a grid of config overrides (train -> predict -> evaluate per run), "
        "skip runs that already finished, retry crashed ones, then write results.csv, summary.md, summary.json, "
        "summary.png and report.html with mean +/- sd over seeds and a paired test of each variant against a reference (a t-test over the seeds' mean differences; with one seed, "
        "Wilcoxon over perturbations).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="preset name or YAML config (may hold a `sweep:` section with grid/variants/seeds/reference)")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the base config for every run (train.steps=50), after "
                   "the config; recorded in sweep.yaml (an extended sweep without them is refused as a changed config)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2]", help="a grid axis; repeat for more axes")
    p.add_argument("--variant", action="append", nargs="+", default=[], metavar=("NAME", "OVERRIDE"),
                   help="a named variant, one factor at a time: NAME then its overrides (none: the config as written); "
                   "repeat for more variants, put the config before the first --variant")
    p.add_argument("--out", required=True, help="sweep directory")
    p.add_argument("--reference", help="variant to compare the others against (default: the first)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each a separate process (default 1)")
    p.add_argument("--retries", type=int, default=1, help="retries of a crashed run before it is reported; a retry resumes from its newest checkpoint (default 1)")
    p.add_argument("--metrics", nargs="+", help="metrics to summarise, separated by spaces or commas (distgen run takes "
                   "one word: mse,pearson_delta) (default: the config's evaluate.metrics where it sets them, "
                   "else mse pearson_delta discrimination_score_l1 overlap_at_N edistance)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from distgen.config import ConfigError
    from distgen.pipeline.grid import parse_grid_args
    from distgen.pipeline.sweep import sweep

    if args.config is None:  # --variant and --metrics take every word up to the next option, a config written after one included
        last = args.variant[-1] if args.variant else []
        eaten = f" ({last[-1]!r} was read as an override of --variant {last[0]})" if len(last) > 1 and "=" not in last[-1] else ""
        if not eaten and args.metrics and "=" not in args.metrics[-1]:
            eaten = f" ({args.metrics[-1]!r} was read as a metric of --metrics)"
        raise ConfigError(f"distgen sweep needs a config (a preset name or a YAML file){eaten}; give it before the first "
                          "--variant or --metrics, e.g. distgen sweep scdfm-small --variant preset --variant ot "
                          "model.coupling.name=exact_ot --out DIR")
    grid = parse_grid_args(args.grid)
    variants = parse_variant_args(args.variant)
    res = sweep(args.config, grid, args.out, reference=args.reference, jobs=args.jobs, retries=args.retries,
                metrics=metric_names(args.metrics) or None, progress=not args.json, variants=variants,
                overrides=args.overrides)
    if args.json:
        print((res.out / "summary.json").read_text(encoding="utf-8"))
    else:
        print((res.out / "summary.md").read_text(encoding="utf-8"))
        print(f"report: {res.out / 'report.html'}  results: {res.out / 'results.csv'}  plots: {res.out / 'summary.png'}")
    if res.failed:
        print(json.dumps({"failed": res.failed}) if args.json else f"{len(res.failed)} run(s) failed: {', '.join(res.failed)}")
        return 1
    return 0


def parse_variant_args(values: list[list[str]]) -> dict[str, list[str]] | None:
    """``--variant NAME OVERRIDE...`` options as ``{NAME: [OVERRIDE, ...]}`` (None without any); a name given twice is
    refused, as a grid axis given twice is."""
    from distgen.config import ConfigError

    if not values:
        return None
    out: dict[str, list[str]] = {}
    for name, *overrides in values:
        if "=" in name:
            raise ConfigError(f"--variant {name!r}: the first word is the variant's name, then its overrides, e.g. "
                              f"--variant ot model.coupling.name=exact_ot (--variant preset: the config as written)")
        if name in out:
            raise ConfigError(f"--variant {name} is given twice; give each variant one name")
        out[name] = overrides
    return out


def metric_names(values: list[str] | None) -> list[str] | None:
    """``--metrics`` as names: ``mse pearson_delta`` and ``mse,pearson_delta`` alike (``distgen run`` takes the
    comma form, ``evaluate`` both; the sweep read it as one unknown metric ``'mse,pearson_delta'``)."""
    if values is None:
        return None
    from distgen.config import ConfigError

    if overrides := [value for value in values if "=" in value]:  # --metrics takes every word up to the next option
        raise ConfigError(f"--metrics {' '.join(values)}: {', '.join(map(repr, overrides))} "
                          f"{'is a config override, not a metric' if len(overrides) == 1 else 'are config overrides, not metrics'}: --metrics takes every word up to the next option, so write base overrides right after "
                          "the config (distgen sweep CONFIG train.steps=50 --metrics mse ...) or after an option of one value "
                          "(--out DIR train.steps=50), not after --variant's overrides (they would be that variant's)")
    return [name for value in values for name in (part.strip() for part in value.split(",")) if name]
