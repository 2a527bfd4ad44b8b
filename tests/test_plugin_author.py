"""A plugin author's mistakes: each is named with the plugin and the fix, never a crash deep inside distgen or a silent result.

Cases from docs/reliability.md, "Plugin author's round": a metric that returns the wrong shape or a bare tensor, a
correlation that declares no orientation, a baseline with a required parameter or the wrong output shape, a missing
dependency, an entry point naming a missing class, a plugin reusing a built-in name, an entry point in a misspelt group.
"""

import inspect
import sys
import warnings

import pytest
import torch

from distgen.capabilities import CORRELATION, MetricCapabilities
from distgen.config import ConfigError, validate_node
from distgen.evaluation.metrics.base import Metric, MetricResult, result_problem
from distgen.kernels.base import Kernel
from distgen.models.base import FittedModel, checked_prediction
from distgen.registry import DuplicateComponentError, PluginCheckError, PluginLoadError, Registry, RegistryError, misdeclared
from distgen.testing import checks
from distgen.testing.fixtures import tiny_eval


# ---------------------------------------------------------------------------- metrics
class _OneValue(Metric):
    """One number for all perturbations (the mean), not one per perturbation."""

    def compute(self, data):
        return MetricResult.from_values((data.means("pred") - data.means("real")).abs().mean().reshape(1), "no cells")


class _Bare(Metric):
    """A bare tensor, not a MetricResult."""

    def compute(self, data):
        return (data.means("pred") - data.means("real")).abs().mean(-1)


class _Corr(Metric):
    """Pearson correlation of the mean deltas; declares nothing (so it reads as lower-is-better)."""

    def compute(self, data):
        a, b = data.delta("pred", "own"), data.delta("real")
        a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
        return MetricResult.from_values((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)), "constant delta")


class _CorrDeclared(_Corr):
    """The same correlation, declared."""

    capabilities = MetricCapabilities(higher_is_better=True, bounds=CORRELATION)


class _CorrDiagnostic(_Corr):
    """The same correlation, reported beside the scores."""

    capabilities = MetricCapabilities(diagnostic=True)


def test_a_metric_result_of_the_wrong_shape_or_type_is_described():
    data = tiny_eval()
    assert "shape (1,) for 3 perturbation(s), expected (3,)" in result_problem(_OneValue().compute(data), 3)
    assert "compute returned Tensor, expected a MetricResult" in result_problem(_Bare().compute(data), 3)
    assert result_problem(_CorrDeclared().compute(data), 3) is None


def test_the_cheap_checks_name_a_metric_whose_values_contradict_its_orientation():
    """A correlation that declares nothing was ranked lower-is-better: every normalised score and verdict reversed."""
    found = checks.problems("metrics", _Corr())
    assert len(found) == 1 and "taken as lower-is-better (higher_is_better=False, the default: it declares no capabilities)" in found[0]
    assert "MetricCapabilities(higher_is_better=True" in found[0]
    assert checks.problems("metrics", _CorrDeclared()) == []
    assert checks.problems("metrics", _CorrDiagnostic()) == []  # a diagnostic has no orientation to contradict
    flipped = type("Flipped", (_Corr,), {"capabilities": MetricCapabilities(higher_is_better=False)})
    assert "MetricCapabilities(higher_is_better=True" in checks.problems("metrics", flipped())[0]
    assert "shape (1,)" in checks.problems("metrics", _OneValue())[0]
    assert "expected a MetricResult" in checks.problems("metrics", _Bare())[0]


def test_run_metrics_names_the_plugin_whose_metric_returns_the_wrong_shape(monkeypatch):
    from distgen.evaluation import suite

    reg = Registry("metrics", Metric, {"mse": "distgen.evaluation.metrics.pseudobulk:MeanSquaredError"})
    reg.add("one_value", _OneValue, provider="my-metrics", version="0.1")
    monkeypatch.setattr(suite, "metrics", reg)
    assert suite.run_metrics(tiny_eval(), ["mse"]).values["mse"]  # a built-in still runs
    with pytest.raises(PluginCheckError, match=r"metrics component 'one_value' from plugin 'my-metrics'.*shape \(1,\) for 3 "
                       r"perturbation\(s\), expected \(3,\).*Fix the plugin"):
        suite.run_metrics(tiny_eval(), ["one_value"])


PLUGIN_METRICS = '''
from distgen.evaluation.metrics.base import Metric, MetricResult


class OneValue(Metric):
    """One number for all perturbations."""

    def compute(self, data):
        return MetricResult.from_values((data.means("pred") - data.means("real")).abs().mean().reshape(1), "no cells")


class Corr(Metric):
    """A correlation that declares nothing."""

    def compute(self, data):
        a, b = data.delta("pred", "own"), data.delta("real")
        a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
        return MetricResult.from_values((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)), "constant delta")
'''


def test_an_installed_plugin_metric_is_checked_before_a_run_and_when_an_evaluation_first_uses_it(plugins):
    """Before: a [1] result crashed deep in the evaluation ('boolean index did not match'), and the undeclared
    correlation was scored as lower-is-better with exit 0."""
    plugins.install("fake-metrics", "fake_metrics", PLUGIN_METRICS,
               {"one_value": "fake_metrics:OneValue", "undeclared_corr": "fake_metrics:Corr"}, "distgen.metrics")
    problems, raised = _checked_and_run(plugins, ["mse", "one_value", "undeclared_corr"], "undeclared_corr")
    assert len(problems) == 2
    assert "'one_value' from plugin 'fake-metrics'" in problems[0] and "expected (3,)" in problems[0]
    assert "'undeclared_corr' from plugin 'fake-metrics'" in problems[1] and "higher_is_better=True" in problems[1]
    assert raised and "PluginCheckError" in raised[0] and "higher_is_better=True" in raised[0]


def _checked_and_run(plugins, names, run):
    """In a fresh process that sees the fake plugins: the pre-flight's lines for metrics ``names`` ("PROBLEM ..."), and
    what running metric ``run`` on ``tiny_eval`` raised ("RAISED Type message"; none when it ran)."""
    code = f"""
import warnings
warnings.simplefilter("ignore")
from distgen.pipeline.checks import metric_problems
from distgen.evaluation.suite import run_metrics
from distgen.testing.fixtures import tiny_eval
for p in metric_problems({names!r}):
    print("PROBLEM", p)
try:
    run_metrics(tiny_eval(), [{run!r}])
except Exception as exc:
    print("RAISED", type(exc).__name__, exc)
"""
    out = plugins.run(code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    return [line for line in lines if line.startswith("PROBLEM")], [line for line in lines if line.startswith("RAISED")]


# ---------------------------------------------------------------------------- models and baselines
class _MeanCell(FittedModel):
    """Predicts one mean cell per set: [B, G], not [B, m, G]."""

    def fit(self, train):
        return self

    def predict(self, control, control_mask, labels):
        return control.mean(1)


class _NeedsAlpha(FittedModel):
    """A baseline with a required parameter."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def fit(self, train):
        return self

    def predict(self, control, control_mask, labels):
        return control * self.alpha


def test_a_prediction_of_the_wrong_shape_names_the_model_and_its_plugin(monkeypatch):
    import distgen.models.base as base

    control = torch.rand(2, 5, 4)
    with pytest.raises(TypeError, match=r"model _MeanCell: predict\(control \(2, 5, 4\).*returned shape \(2, 4\), expected"):
        checked_prediction(_MeanCell(), _MeanCell().predict(control, None, None), control)
    reg = Registry("models", base.PerturbationModel)
    reg.add("mean_cell", _MeanCell, provider="my-baselines", version="0.1")
    monkeypatch.setattr(base, "models", reg)
    with pytest.raises(PluginCheckError, match=r"models component 'mean_cell' from plugin 'my-baselines'.*\[B, m, G\]"):
        checked_prediction(_MeanCell(), _MeanCell().predict(control, None, None), control)
    good = control.numpy()  # numpy is accepted (as the references always took it)
    assert torch.equal(checked_prediction(_MeanCell(), good, control), control)


def test_a_baseline_is_built_with_validated_defaults_and_a_trained_model_is_refused_as_usage(monkeypatch):
    import distgen.pipeline.references as refs
    from distgen.models.base import PerturbationModel

    reg = Registry("models", PerturbationModel, {"generator": "distgen.models.generator:Generator"})
    reg.add("needs_alpha", _NeedsAlpha, provider="my-baselines", version="0.1")
    monkeypatch.setattr(refs, "models", reg)
    monkeypatch.setattr("distgen.config.registry", lambda kind: reg)
    with pytest.raises(ConfigError, match=r"baseline 'needs_alpha' is built with its defaults.*missing required parameter\(s\) "
                       r"'alpha'.*give each of them a default"):
        refs._baseline("needs_alpha")  # was: TypeError "__init__() missing 1 required positional argument", an internal error
    with pytest.raises(ConfigError, match="baseline 'generator' is not a FittedModel"):
        refs._baseline("generator")  # was a TypeError (exit 1, "internal error")


# ---------------------------------------------------------------------------- loading
def test_a_plugin_that_fails_to_load_is_told_the_fix(plugins):
    plugins.install("fake-deps", "fake_deps", "import not_a_real_lib_xyz\n", {"needs_lib": "fake_deps:K"}, "distgen.kernels")
    plugins.install("fake-attr", "fake_attr", "class Other:\n    pass\n", {"typo_class": "fake_attr:Laplace",
                                                                           "typo_module": "fake_attr_nope:Laplace"}, "distgen.kernels")
    reg = Registry("kernels", Kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PluginLoadError, match=r"imports 'not_a_real_lib_xyz', which is not installed.*pip uninstall fake-deps"):
            reg.get("needs_lib")
        with pytest.raises(PluginLoadError, match=r"names 'Laplace', which module 'fake_attr' does not define: fix \[project.entry-points\]"):
            reg.get("typo_class")
        with pytest.raises(PluginLoadError, match=r"names a module 'fake_attr_nope' that is not installed: fix \[project.entry-points\]"):
            reg.get("typo_module")
    plugins.install("fake-base", "fake_base", "class NotAKernel:\n    pass\n", {"not_a_kernel": "fake_base:NotAKernel"}, "distgen.kernels")
    reg.discover(refresh=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PluginLoadError, match=r"not a subclass of distgen\.kernels\.base\.Kernel: make its entry point name a "
                           r"class that subclasses it"):
            reg.get("not_a_kernel")


LAPLACE = '''
import torch
from distgen.kernels.base import Kernel


class Laplace(Kernel):
    """exp(-|x - y|_1)."""

    def gram(self, x, y, *, ref=None, ref_mask=None):
        return torch.exp(-torch.cdist(x, y, p=1))
'''


def test_a_plugin_reusing_a_builtin_name_is_told_to_rename_itself_not_to_uninstall_distgen(plugins):
    plugins.install("fake-rbf", "fake_rbf", LAPLACE, {"rbf": "fake_rbf:Laplace"}, "distgen.kernels")
    reg = Registry("kernels", Kernel, {"rbf": "distgen.kernels.rbf:RBFKernel", "imq": "distgen.kernels.imq:IMQKernel"})
    with pytest.raises(DuplicateComponentError) as err:
        reg.get("rbf")
    msg = str(err.value)
    assert "'rbf' is a built-in name, which a plugin cannot replace" in msg and "pip uninstall fake-rbf" in msg
    assert "pip uninstall <package>" not in msg  # "uninstall one of them" offered to uninstall distgen
    assert reg.get("imq").__name__ == "IMQKernel"
    with pytest.warns(RuntimeWarning, match="'rbf' is a built-in name: rename the entry point of 'fake-rbf'"):
        reg.infos()


@pytest.mark.parametrize("group", ["distgen_kernels", "distgen-kernels"])
def test_a_group_spelt_with_another_separator_is_named_too(plugins, group):
    """``distgen_kernels`` (the module-style spelling) was not scanned at all: no component, no word."""
    plugins.install("fake-sep", "fake_sep", LAPLACE, {"laplace_sep": "fake_sep:Laplace"}, group)
    lines = [line for line in misdeclared("kernels") if "'fake-sep'" in line]
    assert lines and f"{group!r}" in lines[0] and "did you mean 'distgen.kernels'" in lines[0]


def test_distgen_components_warns_about_an_entry_point_in_a_group_it_does_not_read(plugins):
    """Before: `distgen components` listed everything else and said nothing; the author saw only that the name was missing."""
    plugins.install("fake-group", "fake_group", LAPLACE, {"laplace_typo": "fake_group:Laplace"}, "distgen.kernel")
    lines = misdeclared()
    assert [line for line in lines if "'fake-group'" in line and "'distgen.kernel'" in line and "did you mean 'distgen.kernels'" in line]
    assert [line for line in misdeclared("kernels") if "'fake-group'" in line]
    assert not [line for line in misdeclared("encoders") if "'fake-group'" in line]
    out = plugins.run("from distgen.cli import main; import sys; sys.exit(main(['components', '--kind', 'kernels', '--brief']))")
    assert out.returncode == 0, out.stderr
    assert "rbf" in out.stdout and "laplace_typo" not in out.stdout
    assert "warning: plugin 'fake-group' declares 'laplace_typo'" in out.stderr and "did you mean 'distgen.kernels'" in out.stderr


class _Untyped(Kernel):
    """exp(-|x - y|_1 / bandwidth), its parameters without annotations."""

    def __init__(self, bandwidth=1.0, exact=False, mode="l1", extra=None):
        self.bandwidth, self.exact, self.mode, self.extra = bandwidth, exact, mode, extra

    def gram(self, x, y, *, ref=None, ref_mask=None):
        return torch.exp(-torch.cdist(x, y, p=1) / self.bandwidth)


def test_an_unannotated_parameter_is_checked_against_its_plain_default():
    """Before: bandwidth: abc reached the plugin's gram ("unsupported operand type(s) for /"), an internal error."""
    from distgen.config import validate_params

    with pytest.raises(ConfigError, match=r"kernels\[untyped\]\.bandwidth: expected int \| float, got str 'abc'"):
        validate_params(_Untyped, {"bandwidth": "abc"}, "kernels[untyped]")
    with pytest.raises(ConfigError, match=r"\.exact: expected bool"):
        validate_params(_Untyped, {"exact": "yes"}, "kernels[untyped]")
    validate_params(_Untyped, {"bandwidth": 2, "exact": True, "mode": "l2", "extra": [1, 2]}, "kernels[untyped]")  # None: unchecked


def test_the_printed_headline_shows_a_metric_outside_the_default_suite():
    """Before: `distgen run` with evaluate.metrics [mse, my_metric] printed mse only; the plugin's metric was in summary.md."""
    from distgen.evaluation.suite import DEFAULT_METRICS
    from distgen.pipeline.experiment import HEADLINE, headline

    row = {"model": 0.5, "baselines": {"control": 0.7}, "ceiling": 0.1}
    text = headline({"metrics": {"mse": row, "my_plugin_metric": row}})
    assert [line.split()[0] for line in text.splitlines()] == ["mse", "my_plugin_metric"]
    full = headline({"metrics": dict.fromkeys(DEFAULT_METRICS, row)})
    assert [line.split()[0] for line in full.splitlines()] == list(HEADLINE)  # the default suite: the four as before
    assert headline({"metrics": {"mse": row, "my_plugin_metric": row}}, ("mse",)).count("\n") == 0


# ---------------------------------------------------------------------------- second round
SELF_LOOKUP = '''
from distgen.kernels.base import Kernel, kernels

BASE = kernels.get("selfref")  # the plugin asks distgen for its own component while being imported


class SelfRef(Kernel):
    """Never reached."""
'''


def _kernel_load_failure(name, monkeypatch):
    """The message of the ``PluginLoadError`` a fresh kernels registry raises for the installed plugin kernel ``name``.

    The fresh registry also stands in for ``distgen.kernels.base.kernels``, the one a plugin module asks at import time, as
    in a process where the plugin was installed before distgen first read its entry points (a registry another test
    already read would not know the plugin: its lookup would fail as an unknown name, not as a circular import)."""
    reg = Registry("kernels", Kernel)
    monkeypatch.setattr("distgen.kernels.base.kernels", reg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PluginLoadError) as info:
            reg.get(name)
    return str(info.value)


def test_a_plugin_importing_its_own_component_at_import_time_is_told_it_is_a_circular_import(plugins, monkeypatch):
    """Before: "the entry point names 'SelfRef', which module 'fake_selfref' does not define: fix [project.entry-points]",
    which the module does define: the lookup ran while the module was half imported."""
    plugins.install("fake-selfref", "fake_selfref", SELF_LOOKUP, {"selfref": "fake_selfref:SelfRef"}, "distgen.kernels")
    message = _kernel_load_failure("selfref", monkeypatch)
    assert "circular import" in message and "while it is being imported" in message
    assert "does not define" not in message and "fix [project.entry-points]" not in message


POSITIONAL_ONLY = '''
import torch
from distgen.kernels.base import Kernel


class PosOnly(Kernel):
    """exp(-|x - y| / sigma), sigma positional-only."""

    def __init__(self, sigma: float = 1.0, /) -> None:
        self.sigma = sigma

    def gram(self, x, y, *, ref=None, ref_mask=None):
        return torch.exp(-torch.cdist(x, y) / self.sigma)
'''


def test_a_positional_only_parameter_set_in_a_config_is_a_config_error_naming_the_slash(plugins, monkeypatch):
    """Before: PluginBuildError "failed to build: TypeError: PosOnly.__init__() got some positional-only arguments passed as
    keyword arguments: 'sigma'. Install what it needs, fix the plugin, or use another component" (exit 1, nothing to install)."""
    plugins.install("fake-posonly", "fake_posonly", POSITIONAL_ONLY, {"posonly": "fake_posonly:PosOnly"}, "distgen.kernels")
    reg = Registry("kernels", Kernel)
    monkeypatch.setattr("distgen.config.registry", lambda kind: reg)
    with pytest.raises(ConfigError, match=r"kernels\[posonly\]\.sigma: .*positional-only.*'/'.*cannot set"):
        validate_node("kernels", {"name": "posonly", "sigma": 2.0})
    assert validate_node("kernels", {"name": "posonly"}) is None  # its default is still used


NEEDS_Q = '''
from distgen.evaluation.metrics.base import Metric, MetricResult


class NeedsQ(Metric):
    """Mean absolute delta error, scaled by a required q."""

    def __init__(self, q: float) -> None:
        self.q = q

    def compute(self, data):
        return MetricResult.from_values((data.means("pred") - data.means("real")).abs().mean(-1) * self.q, "no cells")
'''


def test_a_plugin_metric_with_a_required_parameter_is_refused_before_a_run_and_at_first_use(plugins):
    """Before: the pre-flight passed it (a warning that its cheap checks could not run), and the evaluation ended in
    "TypeError: NeedsQ.__init__() missing 1 required positional argument: 'q'" (an internal error)."""
    plugins.install("fake-needsq", "fake_needsq", NEEDS_Q, {"needs_q": "fake_needsq:NeedsQ"}, "distgen.metrics")
    problems, raised = _checked_and_run(plugins, ["mse", "needs_q"], "needs_q")
    assert len(problems) == 1, problems
    assert "metrics: metric 'needs_q' from plugin 'fake-needsq'" in problems[0] and "missing required parameter(s) 'q'" in problems[0]
    assert "give each of them a default" in problems[0]
    assert raised and raised[0].startswith("RAISED ConfigError") and "'q'" in raised[0] and "default" in raised[0]


LAPLACE_SIGMA = '''
import torch
from distgen.kernels.base import Kernel


class Laplace(Kernel):
    """exp(-|x - y|_1 / sigma)."""

    def __init__(self, sigma: float = 1.0) -> None:
        self.sigma = float(sigma)

    def gram(self, x, y, *, ref=None, ref_mask=None):
        return torch.exp(-torch.cdist(x, y, p=1) / self.sigma)
'''

TRAIN_WITH_LAPLACE = """
import yaml
from distgen.cli import main
cfg = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                 "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}},
                 "distribution_loss": {"name": "kme", "kernel": {"name": "lap_sigma", "sigma": 2.0}}, "distribution_weight": 0.5},
       "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8, "hvg": 64},
       "train": {"steps": 1, "sets_per_batch": 2, "progress": False, "val_every": 0, "seed": 0}}
open("CFG", "w").write(yaml.safe_dump(cfg))
assert main(["train", "CFG", "--out", "RUN"]) == 0
"""

LOAD = """
import warnings
warnings.simplefilter("ignore")
import distgen
try:
    distgen.load_run("RUN")
    print("LOADED")
except Exception as exc:
    print("RAISED", type(exc).__name__, exc)
"""


@pytest.mark.slow  # trains a run and loads it in three processes: about a minute on a loaded 2-core box
def test_a_run_trained_with_a_plugin_that_is_now_missing_or_changed_names_the_recorded_version(plugins, tmp_path_factory):
    """Before: loading the run without the plugin said only "unknown kernels component 'lap_sigma' ... (e.g. bayes_hier from
    plugins/distgen-bayes)", and with the plugin's next version "unknown key 'sigma'. Valid keys: bandwidth", neither
    naming the plugin and version the run's manifest.json records."""
    import subprocess
    import sys

    plugins.install("fake-lapsigma", "fake_lapsigma", LAPLACE_SIGMA, {"lap_sigma": "fake_lapsigma:Laplace"}, "distgen.kernels")
    work = tmp_path_factory.mktemp("plugin_run")
    run_dir = work / "run"
    out = plugins.run(TRAIN_WITH_LAPLACE.replace("CFG", str(work / "cfg.yaml")).replace("RUN", str(run_dir)))
    assert out.returncode == 0, out.stderr

    newer = tmp_path_factory.mktemp("newer")  # the plugin's next version renamed sigma to bandwidth
    info = newer / "fake_lapsigma-0.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-lapsigma\nVersion: 0.4\n")
    (info / "entry_points.txt").write_text("[distgen.kernels]\nlap_sigma = fake_lapsigma:Laplace\n")
    (newer / "fake_lapsigma.py").write_text(LAPLACE_SIGMA.replace("sigma: float", "bandwidth: float").replace("float(sigma)", "float(bandwidth)"))

    def load(extra: list[str]) -> str:
        path = ":".join([*extra, *(p for p in sys.path if p and p != str(plugins.root))])
        done = subprocess.run([sys.executable, "-c", LOAD.replace("RUN", str(run_dir))], capture_output=True, text=True,
                              env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "LOADED" in load([str(plugins.root)])  # the version it was trained with
    absent = load([])
    assert "RAISED ConfigError" in absent and "unknown kernels component 'lap_sigma'" in absent
    assert "trained with plugin(s) fake-lapsigma 0.3 (not installed now)" in absent and "pip install 'fake-lapsigma==0.3'" in absent
    changed = load([str(newer)])
    assert "RAISED ConfigError" in changed and "unknown key 'sigma'" in changed
    assert "trained with plugin(s) fake-lapsigma 0.3 (0.4 installed now)" in changed and "pip install 'fake-lapsigma==0.3'" in changed


def test_the_manifest_records_the_version_of_a_plugin_that_is_imported_when_two_are_on_the_path(plugins, tmp_path_factory, monkeypatch):
    """Two copies of one plugin on sys.path (a stale egg-link, a second site-packages): the import system and the registry use
    the first; manifest.json recorded the last one's version, so a run said it was built with code it never ran."""
    from distgen.train.manifest import plugin_versions

    plugins.install("fake-twice", "fake_twice", LAPLACE_SIGMA, {"lap_twice": "fake_twice:Laplace"}, "distgen.kernels")
    later = tmp_path_factory.mktemp("later")
    info = later / "fake_twice-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-twice\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[distgen.kernels]\nlap_twice = fake_twice:Laplace\n")
    monkeypatch.syspath_prepend(str(later))
    monkeypatch.setattr(sys, "path", [str(plugins.root), *(p for p in sys.path if p != str(plugins.root))])  # 0.3 first
    reg = Registry("kernels", Kernel)
    reg.get("lap_twice")
    assert reg.info("lap_twice").version == "0.3"
    assert plugin_versions()["fake-twice"] == "0.3"


def test_a_plugin_name_that_differs_from_a_built_in_only_by_case_or_separator_warns_when_used(plugins):
    """A plugin's 'RBF' (or 'Energy', 'im-q') beside the built-in 'rbf' was loaded without a word: a config that meant the
    built-in and wrote it in capitals silently trained with the plugin's kernel (with no such plugin, 'RBF' is refused
    with "Did you mean 'rbf'?")."""
    from distgen.errors import DistgenRuntimeWarning

    plugins.install("fake-upper", "fake_upper", LAPLACE, {"RBF": "fake_upper:Laplace", "lap_upper": "fake_upper:Laplace"},
                    "distgen.kernels")
    reg = Registry("kernels", Kernel, {"rbf": "distgen.kernels.rbf:RBFKernel"})
    with pytest.warns(DistgenRuntimeWarning, match=r"kernels component 'RBF' from plugin 'fake-upper' differs from the built-in "
                      r"'rbf' only by case or separators.*rename the entry point"):
        assert reg.get("RBF").__name__ == "Laplace"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reg.get("rbf").__name__ == "RBFKernel"
        assert reg.get("lap_upper").__name__ == "Laplace"


NEEDS_ALPHA = "from distgen.models.base import FittedModel\n\n\n" + inspect.getsource(_NeedsAlpha)  # the baseline above, installed


def test_a_baseline_with_a_required_parameter_is_refused_before_a_run_trains(plugins):
    """Before: the pre-flight looked the name up only, so `distgen run` trained the whole model and then stopped (exit 2)
    when it built its baselines ("baseline 'needs_alpha' is built with its defaults ... which failed")."""
    plugins.install("fake-alpha", "fake_alpha", NEEDS_ALPHA, {"needs_alpha": "fake_alpha:_NeedsAlpha"}, "distgen.models")
    code = """
import warnings
warnings.simplefilter("ignore")
from distgen.pipeline.checks import config_problems
doc = {"model": {"name": "control"}, "data": {"dataset": "norman_k562"}, "evaluate": {"baselines": ["control", "needs_alpha"]}}
for p in config_problems(doc):
    print("PROBLEM", p)
"""
    out = plugins.run(code)
    assert out.returncode == 0, out.stderr
    problems = [line for line in out.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 1, out.stdout
    assert "evaluate.baselines: baseline 'needs_alpha' is built with its defaults" in problems[0]
    assert "missing required parameter(s) 'alpha'" in problems[0] and "give each of them a default" in problems[0]


class _KeyedConfigError(ConfigError):
    """A plugin's own ConfigError, built from a key and a reason (not from one message)."""

    def __init__(self, key, reason):
        super().__init__(f"{key}: {reason}")
        self.key = key


class _WordedConfigError(ConfigError):
    """A plugin's ConfigError that words its message from a field, not from its arguments."""

    def __str__(self):
        return "sigma: too large"


@pytest.mark.parametrize("raised", ["keyed", "caused", "unknown", "worded"])
def test_a_run_whose_component_fails_to_build_keeps_the_error_it_raised_with_the_plugin_note(raised, tmp_path, monkeypatch):
    """A run's model rebuilt for predict raised a plugin's ConfigError subclass whose constructor takes (key, reason):
    the plugin-version note was added by building ``type(err)(message)``, which raised "TypeError: __init__() missing 1
    required positional argument: 'reason'" (an internal error, exit 1, in place of the plugin's config error, exit 2);
    and the note's re-raise dropped the error's cause (the plugin's ValueError) and its traceback into the plugin."""
    from distgen.pipeline import predict
    from distgen.registry import UnknownComponentError

    cause = ValueError("sigma must be at most 1")

    def build(*args, **kwargs):
        if raised == "keyed":
            raise _KeyedConfigError("sigma", "too large")
        if raised == "caused":
            raise ConfigError(str(cause)) from cause
        if raised == "worded":
            raise _WordedConfigError()
        raise UnknownComponentError("unknown kernels component 'lap'.")

    class _Info:
        info = None
        seen_perturbations = ()

    (tmp_path / "config.yaml").write_text("model: {name: generator}\n")
    (tmp_path / "manifest.json").write_text('{"versions": {"plugins": {"fake-lap": "0.3"}}}')
    monkeypatch.setattr(predict, "load_checkpoint", lambda *a, **k: None)
    monkeypatch.setattr(predict, "check_config_matches", lambda *a, **k: None)
    monkeypatch.setattr(predict, "build_model", build)
    with pytest.raises((ConfigError, RegistryError)) as info:
        predict.load_run_model(tmp_path, _Info(), None, "ema", torch.device("cpu"))
    err = info.value
    assert type(err) is {"keyed": _KeyedConfigError, "caused": ConfigError, "unknown": UnknownComponentError,
                         "worded": _WordedConfigError}[raised]
    text = str(err) if raised != "worded" else f"{err} {' '.join(err.__notes__)}"  # its own words, the note beside them
    assert text.startswith({"keyed": "sigma: too large", "caused": "sigma must be at most 1", "unknown": "unknown kernels component 'lap'.",
                            "worded": "sigma: too large"}[raised])
    assert "trained with plugin(s) fake-lap 0.3 (not installed now)" in text and text.count("fake-lap 0.3") == 1
    assert info.traceback[-1].name == "build"  # where it was raised, not the line that added the note
    if raised == "keyed":
        assert err.key == "sigma"
    if raised == "caused":
        assert err.__cause__ is cause


@pytest.mark.parametrize("versions", ["0.1", ["fake-lap"], None, {"plugins": ["fake-lap"]}])
def test_the_plugin_note_of_a_manifest_with_versions_of_another_shape_is_empty(versions):
    """The note is worded while another error is raised: a manifest.json whose "versions" is not a mapping (edited by
    hand, written by another tool) made it "AttributeError: 'str' object has no attribute 'get'", an internal error in
    place of the component's config error."""
    from distgen.train.manifest import plugin_changes

    assert plugin_changes({"versions": versions}) == ""


def test_the_plugin_note_matches_a_distribution_name_spelt_otherwise(plugins):
    """A distribution's name is one name however its metadata spells it (``fake_lap``, ``Fake.Lap``, ``fake-lap``: pip
    installs any of them as the same project): a run recorded under one spelling and loaded with the same version
    installed under another was said to be trained with a plugin "not installed now"."""
    from distgen.train.manifest import plugin_changes

    plugins.install("fake-lap", "fake_lap", LAPLACE, {"lap_named": "fake_lap:Laplace"}, "distgen.kernels")
    assert plugin_changes({"versions": {"plugins": {"fake-lap": "0.3"}}}) == ""
    for spelt in ("fake_lap", "Fake.Lap", "FAKE--lap"):
        assert plugin_changes({"versions": {"plugins": {spelt: "0.3"}}}) == "", spelt
    note = plugin_changes({"versions": {"plugins": {"Fake_Lap": "0.2"}}})
    assert "Fake_Lap 0.2 (0.3 installed now)" in note and "pip install 'Fake_Lap==0.2'" in note


SCALED_MAE = '''
from distgen.evaluation.metrics.base import Metric, MetricResult


class ScaledMAE(Metric):
    """Mean absolute delta error, times scale (1 when None)."""

    def __init__(self, scale: float = None) -> None:
        self.scale = 1.0 if scale is None else scale

    def compute(self, data):
        return MetricResult.from_values((data.means("pred") - data.means("real")).abs().mean(-1) * self.scale, "no cells")
'''


@pytest.mark.parametrize("scale", [None, float("inf"), 2])
def test_run_metrics_builds_a_plugin_metric_with_the_parameters_it_is_given_as_before(plugins, monkeypatch, scale):
    """``run_metrics(..., params=...)`` (Python, or a profile's parameters) builds a metric with them, as it always did: a
    plugin's ``scale: float = None`` given None, or inf, was refused with "is built with its defaults (evaluate.metrics,
    --metrics and train.val_metrics take names, not nodes), which failed", neither of which was true (the config
    checks of a YAML node, applied to values a config never wrote)."""
    from distgen.evaluation import suite

    plugins.install("fake-scaled", "fake_scaled", SCALED_MAE, {"scaled_mae": "fake_scaled:ScaledMAE"}, "distgen.metrics")
    monkeypatch.setattr(suite, "metrics", Registry("metrics", Metric))
    data = tiny_eval()
    plain = torch.tensor(suite.run_metrics(data, ["scaled_mae"]).values["scaled_mae"])
    given = torch.tensor(suite.run_metrics(data, ["scaled_mae"], params={"scaled_mae": {"scale": scale}}).values["scaled_mae"])
    assert torch.equal(given, plain * (1.0 if scale is None else scale))


def test_the_case_twin_warning_is_said_once_and_never_about_built_ins_that_differ_by_separators(plugins):
    """The warning is said when the plugin's component is loaded (once per process: a sweep's pre-flight over 20 grid
    points says it once), and distgen's own names are never compared with each other (built-ins 'foo_bar' and 'foo-bar')."""
    from distgen.errors import DistgenRuntimeWarning

    plugins.install("fake-twin", "fake_twin", LAPLACE, {"Foo.Bar": "fake_twin:Laplace"}, "distgen.kernels")
    builtins = {"foo_bar": "distgen.kernels.rbf:RBFKernel", "foo-bar": "distgen.kernels.rbf:RBFKernel"}
    reg = Registry("kernels", Kernel, builtins)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        for _ in range(20):
            assert reg.get("foo_bar").__name__ == reg.get("foo-bar").__name__ == "RBFKernel"
            assert reg.get("Foo.Bar").__name__ == "Laplace"
    twins = [str(w.message) for w in said if issubclass(w.category, DistgenRuntimeWarning)]
    assert len(twins) == 1 and "'Foo.Bar' from plugin 'fake-twin' differs from the built-in 'foo_bar'" in twins[0], twins


class _NeedsInfo(_NeedsAlpha):
    """A fitted model built from the data's vocabularies (a required ``info``, filled in for a run's model only)."""

    def __init__(self, info) -> None:
        self.info = info


def test_a_baseline_needing_the_data_filled_in_is_refused_before_training_in_the_words_of_its_build(monkeypatch):
    """A FittedModel whose constructor requires ``info`` (the bundled bayes_hier) as a baseline: the pre-flight passed it
    ('info' is filled in for a model's node), and the run trained, then stopped when it built its baselines with
    "PluginBuildError ... failed to build: TypeError: __init__() missing 1 required positional argument: 'info'"
    (exit 1): a baseline is built from its name alone, with nothing filled in."""
    import distgen.pipeline.references as refs
    from distgen.models.base import PerturbationModel

    reg = Registry("models", PerturbationModel)
    reg.add("needs_info", _NeedsInfo, provider="my-baselines", version="0.1")
    monkeypatch.setattr(refs, "models", reg)
    monkeypatch.setattr("distgen.config.registry", lambda kind: reg)
    problem = refs.baseline_problem("needs_info")
    assert problem is not None and "baseline 'needs_info' is built with its defaults" in problem
    assert "missing required parameter(s) 'info'" in problem
    with pytest.raises(ConfigError) as built:
        refs._baseline("needs_info")
    assert str(built.value) == problem


def test_a_circular_import_inside_a_library_the_plugin_imports_is_named_as_the_library_s(plugins, monkeypatch):
    """A plugin importing a library whose own two modules import each other: the message said the plugin's module "was
    asked for again while it is being imported (a circular import: at import time it asks distgen for one of its own
    components...)", none of which was so; it names the library's module now."""
    (plugins.root / "fake_liba.py").write_text("from fake_libb import f\n\n\ndef g():\n    return 1\n")
    (plugins.root / "fake_libb.py").write_text("from fake_liba import g\n\n\ndef f():\n    return 2\n")
    plugins.install("fake-uselib", "fake_uselib", "import fake_liba\n" + LAPLACE, {"uselib": "fake_uselib:Laplace"}, "distgen.kernels")
    message = _kernel_load_failure("uselib", monkeypatch)
    assert "circular import" in message and "'fake_liba'" in message
    assert "'fake_uselib' was asked for again" not in message and "asks distgen" not in message


def test_a_plugin_asking_for_its_own_component_at_import_time_warns_once(plugins, monkeypatch):
    """The plugin's lookup at import time loads the same entry point again (inside the first load): that inner load
    warned and failed, and the outer one warned again with the inner's message, so one mistake printed two warnings."""
    import distgen.kernels.base as kernel_base
    from distgen.errors import DistgenRuntimeWarning

    plugins.install("fake-selfonce", "fake_selfonce", SELF_LOOKUP.replace("selfref", "selfonce"),
                    {"selfonce": "fake_selfonce:SelfRef"}, "distgen.kernels")
    reg = Registry("kernels", Kernel)
    monkeypatch.setattr(kernel_base, "kernels", reg)  # the registry the module asks is the one loading it
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(PluginLoadError) as first:
            reg.get("selfonce")
        with pytest.raises(PluginLoadError) as again:
            reg.get("selfonce")
    warned = [str(w.message) for w in said if issubclass(w.category, DistgenRuntimeWarning)]
    assert len(warned) == 1 and "circular import" in warned[0], warned
    assert "circular import" in str(first.value) and str(again.value) == str(first.value)


def test_a_component_without_a_constructor_of_its_own_is_not_said_to_take_args_and_kwargs():
    """A class that defines no ``__init__`` (the built-in kernel 'linear', metric 'mse', a plugin's plain class) has
    ``object.__init__(self, /, *args, **kwargs)``: a key set on it was refused with "LinearKernel's constructor takes
    *args/**kwargs, which a config cannot set ... name each parameter in its signature", untrue of the class."""
    with pytest.raises(ConfigError) as info:
        validate_node("kernels", {"name": "linear", "sigma": 1.0})
    assert "unknown key 'sigma'. Valid keys: (none)." in str(info.value)
    assert "*args" not in str(info.value)


POSITIONAL_INJECTED = '''
from distgen.encoders.mean import MeanEmbedding


class PosGenes(MeanEmbedding):
    """The mean embedding, n_genes positional-only."""

    def __init__(self, n_genes: int, /) -> None:
        super().__init__(n_genes)
'''


def test_a_positional_only_parameter_that_assembly_fills_is_a_config_error_naming_the_slash(plugins, monkeypatch):
    """``n_genes`` (filled in from the data, by keyword) before '/': "PluginBuildError ... failed to build: TypeError:
    PosGenes.__init__() got some positional-only arguments passed as keyword arguments: 'n_genes'. Install what it
    needs, fix the plugin, or use another component" (exit 1, nothing to install), as a config's key was before the
    round that named the '/' for those."""
    from distgen.config import build_component
    from distgen.encoders import Encoder

    plugins.install("fake-posgenes", "fake_posgenes", POSITIONAL_INJECTED, {"posgenes": "fake_posgenes:PosGenes"})
    reg = Registry("encoders", Encoder)
    monkeypatch.setattr("distgen.config.registry", lambda kind: reg)
    with pytest.raises(ConfigError, match=r"encoders\[posgenes\]\.n_genes: .*'n_genes' is positional-only .*'/'.* fills it "
                       r"from the data by keyword"):
        build_component("encoders", {"name": "posgenes"}, n_genes=5)
