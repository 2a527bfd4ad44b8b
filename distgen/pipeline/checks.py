"""Check a whole experiment before any work: every problem of a config, reported at once.

``distgen run`` and ``distgen sweep`` call these before they create a folder, load data or train,
so that an unknown key, a value out of range (``data.hvg=0``), an unknown metric or baseline, or a
bad grid cell stops the command in seconds with one message listing every problem (a sweep names
the runs each problem affects), instead of surfacing after training or half-way through a sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from distgen.config import ConfigError, validate_node
from distgen.errors import clip_message
from distgen.registry import RegistryError
from distgen.wording import first_of

#: Errors that mean "this part of the config is wrong" (anything else is a bug and propagates).
_CONFIG_ERRORS = (ConfigError, RegistryError, ValueError, TypeError, KeyError)


def _text(exc: BaseException, limit: int = 400) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return clip_message(text.strip().replace("\n", " "), limit).rstrip(".")


def metric_problems(names: Sequence[str] | None, where: str = "metrics") -> list[str]:
    """Unknown metric names, plugin metrics that fail to load or their cheap checks: ``evaluation.metrics.base.metric_problem``
    (the wording ``train.val_metrics`` gets too)."""
    from distgen.evaluation.metrics.base import metric_problem

    if names is None:
        return []
    if isinstance(names, str) or not isinstance(names, Sequence):
        return [f"{where}: expected a list of metric names, got {names!r}"]
    found = (metric_problem(name, where) for name in names)
    return [clip_message(p.replace("\n", " "), 1200).rstrip(".") for p in found if p is not None]


def config_problems(doc: Mapping[str, Any], metrics: Sequence[str] | None = None) -> list[str]:
    """Every problem of a run document (with the run's ``--metrics``), as messages; empty when it is sound."""
    from distgen.models import models
    from distgen.models.base import is_trainable
    from distgen.pipeline.experiment import evaluate_section
    from distgen.pipeline.references import DEFAULT_BASELINES, baseline_problem
    from distgen.train.run import resolve_document

    problems: list[str] = []

    def attempt(check: Callable[[], Any]) -> Any:
        try:
            return check()
        except _CONFIG_ERRORS as exc:
            problems.append(_text(exc))
            return None

    attempt(lambda: resolve_document(doc))  # sections, data (incl. hvg, split, schema), train, preflight
    if isinstance(doc.get("model"), Mapping | str):
        attempt(lambda: validate_node("models", doc["model"] if isinstance(doc["model"], Mapping) else {"name": doc["model"]}))
    problems += fit_section_problems(doc)
    ev = attempt(lambda: evaluate_section(doc)) or {}
    names = metrics if metrics is not None else ev.get("metrics")
    problems += metric_problems(names, "--metrics" if metrics is not None else "evaluate.metrics")
    baselines = ev.get("baselines", DEFAULT_BASELINES)
    if isinstance(baselines, str) or not isinstance(baselines, Sequence):
        problems.append(f"evaluate.baselines: expected a list of model names, got {baselines!r}")
        baselines = ()
    for name in baselines:
        try:
            cls = models.get(str(name))
        except _CONFIG_ERRORS as exc:
            problems.append(f"evaluate.baselines: {_text(exc)}")
            continue
        if cls is not None and is_trainable(cls):
            problems.append(f"evaluate.baselines: {name!r} is trained, not fitted in closed form; a baseline must be a FittedModel")
        elif cls is not None and (problem := baseline_problem(str(name))) is not None:  # found before training, not after it
            problems.append(f"evaluate.baselines: {problem}")
    return list(dict.fromkeys(problems))


def fit_section_problems(doc: Mapping[str, Any]) -> list[str]:
    """A ``fit:`` key no registered fitted model takes (a typo), for the document's model (``fit_option_problems``)."""
    from distgen.models import models
    from distgen.train.loop import fit_option_problems

    section, node = doc.get("fit"), doc.get("model")
    if not section:
        return []
    if not isinstance(section, Mapping):
        return [f"fit: must be a mapping of the fitted model's fit options, got {section!r}"]
    name = node.get("name") if isinstance(node, Mapping) else node
    try:
        cls = models.get(str(name))
    except _CONFIG_ERRORS:
        return []  # the model node's own check says why
    return fit_option_problems(cls, section, str(name))[0]


def check_experiment(doc: Mapping[str, Any], metrics: Sequence[str] | None = None) -> None:
    """Raise one ``ConfigError`` listing every problem of a run document (see ``config_problems``)."""
    problems = config_problems(doc, metrics)
    if problems:
        raise ConfigError(summarise(problems, "found before any work"))


def summarise(problems: Sequence[str], when: str) -> str:
    """``"2 problems (found before any work): 1) ...; 2) ..."`` (a single problem as itself)."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems ({when}): " + "; ".join(f"{i}) {p}" for i, p in enumerate(problems, 1))


def check_sweep(cells: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> None:
    """Check every cell of a sweep (``{run name: run document}``) and its summary ``metrics`` before any run.

    One ``ConfigError`` lists each distinct problem once, with the runs it affects.
    """
    where: dict[str, list[str]] = {}
    for slug, doc in cells.items():
        for p in config_problems(doc):
            where.setdefault(p, []).append(slug)
    problems = metric_problems(list(metrics), "sweep --metrics")
    for p, slugs in where.items():
        runs = first_of(slugs, 4, enclosed=True)
        problems.append(f"{p} (run{'s' if len(slugs) > 1 else ''} {runs})" if len(slugs) < len(cells) or len(cells) == 1 else f"{p} (every run)")
    if problems:
        raise ConfigError("sweep: " + summarise(problems, "found before any run"))
