"""Registry: static built-in tables, entry-point discovery, conflicts, broken plugins, plugin checks, unknown names."""

import json
import sys
import warnings

import pytest
import torch

from distgen.config import ConfigError, build_component, validate_node
from distgen.encoders import Encoder
from distgen.registry import (
    HOMES,
    DuplicateComponentError,
    PluginCheckError,
    PluginLoadError,
    Registry,
    UnknownComponentError,
    registry,
)
from distgen.testing import checks

GOOD = """
from distgen.encoders.mean import MeanEmbedding

class Plugged(MeanEmbedding):
    '''A plugged-in encoder.'''
"""

BAD_OUTPUTS = """
from distgen.encoders.mean import MeanEmbedding

class Wrong(MeanEmbedding):
    '''Drops the last feature.'''

    def forward(self, cells, mask):
        return super().forward(cells, mask)[:, :-1]


class NaNs(MeanEmbedding):
    '''Answers NaN.'''

    def forward(self, cells, mask):
        return super().forward(cells, mask) * float("nan")
"""

BUILTIN_MEAN = {"mean": "distgen.encoders.mean:MeanEmbedding", "kme": "distgen.encoders.kme:KernelMeanEmbedding"}


# ---------------------------------------------------------------------------- built-ins
def test_builtin_lookup_and_info():
    info = registry("encoders").info("mean")
    assert (info.kind, info.name, info.provider) == ("encoders", "mean", "distgen")
    assert info.summary.startswith("Mean expression")
    assert info.capabilities.output_kind == "vector" and info.to_dict()["capabilities_type"] == "EncoderCapabilities"
    json.dumps(info.to_dict())


def test_builtins_are_a_static_table_loaded_on_first_use(plugins):
    out = plugins.run(
        "import sys; from distgen.registry import registry; names = registry('kernels').names(); "
        "print(names, 'distgen.kernels.rbf' in sys.modules); registry('kernels').get('rbf'); print('distgen.kernels.rbf' in sys.modules)"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["['energy', 'imq', 'linear', 'rbf'] False", "True"]


def test_importing_distgen_is_cheap(plugins):
    out = plugins.run("import sys, distgen; print(sorted(m for m in ('torch', 'anndata', 'distgen.registry') if m in sys.modules))")
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_kind_lives_beside_its_interface():
    for kind, home in HOMES.items():
        reg = registry(kind)
        module = home.partition(":")[0]
        assert reg.kind == kind and reg.base.__module__ == module, f"{kind}: registry in {module}, base in {reg.base.__module__}"


def test_unknown_name_lists_available_and_suggests():
    with pytest.raises(UnknownComponentError) as err:
        registry("encoders").get("maen")
    msg = str(err.value)
    assert "'maen'" in msg and "Available:" in msg and "mean" in msg and "Did you mean 'mean'" in msg


def test_unknown_name_without_a_near_miss_says_plugins_must_be_installed():
    """A model of a plugin not installed in this environment (bayes_hier without distgen-bayes) is not a typo."""
    with pytest.raises(UnknownComponentError, match=r"unknown models component 'zzz_from_a_plugin'\. If 'zzz_from_a_plugin' comes "
                       r"from a plugin .*install that package in this Python environment .*distgen components"):
        registry("models").get("zzz_from_a_plugin")
    with pytest.raises(UnknownComponentError) as err:
        registry("encoders").get("maen")
    assert "install that package" not in str(err.value)  # a near miss gets its suggestion only


def test_unknown_kind():
    with pytest.raises(UnknownComponentError, match=r"unknown component kind 'encoder'.*Did you mean 'encoders'"):
        registry("encoder")


def test_add_in_code_refuses_a_taken_name():
    reg = Registry("encoders", Encoder)

    @reg.register("x")
    class A(Encoder):
        """A."""

    with pytest.raises(DuplicateComponentError):

        @reg.register("x")
        class B(Encoder):
            """B."""


def test_capabilities_must_be_typed():
    class Loose(Encoder):
        """Declares a free dict."""

        capabilities = {"output_kind": "vector"}  # type: ignore[assignment]

    with pytest.raises(PluginLoadError, match="declare it with the dataclass of its kind"):
        Registry("encoders", Encoder).add("loose", Loose)


# ---------------------------------------------------------------------------- plugins
def test_entry_point_is_lazy_and_checked(plugins):
    plugins.install("fake-good", "fake_good", GOOD, {"plugged": "fake_good:Plugged"})
    reg = Registry("encoders", Encoder)
    reg.discover()
    assert "plugged" in reg.names()
    assert "fake_good" not in sys.modules  # discovery imported nothing
    cls = reg.get("plugged")
    assert issubclass(cls, Encoder) and "fake_good" in sys.modules
    info = reg.info("plugged")
    assert (info.provider, info.version) == ("fake-good", "0.3")


def test_broken_plugin_warns_and_is_skipped(plugins):
    plugins.install("fake-broken", "fake_broken", "raise ImportError('boom: missing dependency')", {"broken": "fake_broken:X"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    with pytest.warns(RuntimeWarning, match="fake-broken.*boom"):
        infos = reg.infos()
    assert "mean" in [i.name for i in infos]  # the rest still works
    assert "broken" not in reg.names()
    with pytest.raises(PluginLoadError, match=r"'broken' from 'fake-broken' failed to load: ImportError\('boom"):
        reg.get("broken")  # asked for by name: the reason again, not "unknown component"


def test_plugin_of_wrong_type_is_rejected(plugins):
    plugins.install("fake-wrong", "fake_wrong", "class NotAnEncoder:\n    pass\n", {"wrong": "fake_wrong:NotAnEncoder"})
    reg = Registry("encoders", Encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PluginLoadError, match=r"not a subclass of distgen\.encoders\.base\.Encoder"):
            reg.get("wrong")


def test_import_distgen_survives_broken_plugin(plugins):
    plugins.install("fake-broken2", "fake_broken2", "raise RuntimeError('bad plugin')", {"broken2": "fake_broken2:X"})
    out = plugins.run("import warnings, distgen; from distgen.api import components; warnings.simplefilter('ignore'); print(len(components()))")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 5


def test_a_plugin_that_calls_sys_exit_on_import_is_skipped_with_a_warning(plugins):
    plugins.install("fake-exit", "fake_exit", "import sys\nsys.exit(3)\n", {"quitter": "fake_exit:X"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    with pytest.warns(RuntimeWarning, match=r"fake-exit.*called sys\.exit\(3\).*skipped"):
        infos = reg.infos()
    assert {"kme", "mean"} <= {i.name for i in infos} and "quitter" not in reg.names()
    out = plugins.run("from distgen.cli import main; import sys; sys.exit(main(['components']))")
    assert out.returncode == 0 and "kme" in out.stdout, out.stderr
    assert "fake-exit" in out.stderr and "sys.exit(3)" in out.stderr


def test_duplicate_names_name_both_providers_when_used(plugins):
    plugins.install("fake-one", "fake_one", GOOD, {"twin": "fake_one:Plugged", "solo": "fake_one:Plugged"})
    plugins.install("fake-two", "fake_two", GOOD, {"twin": "fake_two:Plugged"})
    reg = Registry("encoders", Encoder)
    reg.discover()  # discovery does not fail: the clash matters only to a config that uses the name
    assert {"twin", "solo"} <= set(reg.names()) and reg.providers("twin") == ["fake-one", "fake-two"]
    assert issubclass(reg.get("solo"), Encoder)
    with pytest.raises(DuplicateComponentError) as err:
        reg.get("twin")
    assert "fake-one" in str(err.value) and "fake-two" in str(err.value) and "pip uninstall" in str(err.value)


def test_plugin_reusing_a_builtin_name_breaks_only_that_name(plugins, monkeypatch):
    plugins.install("fake-clash", "fake_clash", GOOD, {"mean": "fake_clash:Plugged"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    assert issubclass(reg.get("kme"), Encoder)  # the rest of the kind works
    with pytest.raises(DuplicateComponentError, match=r"'mean' is provided by 'distgen' .* and 'fake-clash'"):
        reg.get("mean")
    with pytest.warns(RuntimeWarning, match="'mean' is provided by 'distgen', 'fake-clash'"):
        infos = reg.infos()
    both = [i for i in infos if i.name == "mean"]
    assert {i.provider for i in both} == {"distgen", "fake-clash"}
    assert {i.conflicts for i in both} == {("fake-clash",), ("distgen",)}
    _use(monkeypatch, reg)
    with pytest.raises(ConfigError, match=r"encoders\.name: encoders name 'mean' is provided by"):
        validate_node("encoders", {"name": "mean"})


def test_distgen_components_lists_both_providers_with_a_warning(plugins):
    plugins.install("fake-clash2", "fake_clash2", GOOD, {"mean": "fake_clash2:Plugged"})
    code = (
        "from distgen.cli import main; import sys; rc = main(['components', '--kind', 'encoders']); "
        "from distgen.config import build_component; build_component('encoders', 'kme', n_genes=3); sys.exit(rc)"
    )
    out = plugins.run(code)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("encoders") and " mean " in line]
    assert {r[2] for r in rows} == {"distgen", "fake-clash2"}
    assert "warning:" in out.stderr and "'mean' is provided by 'distgen', 'fake-clash2'" in out.stderr
    out = plugins.run("from distgen.config import build_component; build_component('encoders', 'mean', n_genes=3)")
    assert out.returncode != 0 and "fake-clash2" in out.stderr  # using that one name is what fails


def test_a_plugin_component_with_the_wrong_shape_or_nan_is_named_when_first_built(plugins, monkeypatch):
    plugins.install("fake-bad", "fake_bad", BAD_OUTPUTS, {"wrong": "fake_bad:Wrong", "nans": "fake_bad:NaNs"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    _use(monkeypatch, reg)
    with pytest.raises(PluginCheckError, match=r"'wrong' from plugin 'fake-bad'.*returned shape \(3, 11\), expected \(3, 12\)"):
        build_component("encoders", "wrong", n_genes=12)
    with pytest.raises(PluginCheckError, match=r"'nans' from plugin 'fake-bad'.*non-finite value"):
        build_component("encoders", "nans", n_genes=12)
    with pytest.raises(PluginCheckError, match="'wrong' from plugin 'fake-bad'"):  # not silently accepted the second time
        build_component("encoders", "wrong", n_genes=12)


def test_a_good_plugin_is_checked_once_without_changing_the_random_state(plugins, monkeypatch):
    plugins.install("fake-fine", "fake_fine", GOOD, {"fine": "fake_fine:Plugged"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    _use(monkeypatch, reg)
    calls = []
    real = checks.check_component
    monkeypatch.setattr(checks, "check_component", lambda kind, name: calls.append(name) or real(kind, name))
    torch.manual_seed(0)
    build_component("encoders", "fine", n_genes=12)
    after_first = torch.rand(1)
    torch.manual_seed(0)
    build_component("encoders", "fine", n_genes=12)
    build_component("encoders", "mean", n_genes=12)  # built-ins are tested with distgen, not at run time
    assert torch.equal(torch.rand(1), after_first) and calls == ["fine"]


def _use(monkeypatch, reg):
    """Make config building and the cheap checks look ``reg`` up (the real registries are found by kind)."""
    monkeypatch.setattr("distgen.config.registry", lambda kind: reg)
    monkeypatch.setattr("distgen.testing.checks.registry", lambda kind: reg)


BACKBONES = """
import torch
from torch import nn
from distgen.backbones.base import Backbone
from distgen.capabilities import BackboneCapabilities


class Population(Backbone):
    '''Reads the population embedding, and says so.'''

    requires = frozenset({"population"})

    def __init__(self, n_genes: int, population_dim: int = 0) -> None:
        super().__init__()
        self.lin = nn.Linear(n_genes + 1, n_genes)
        self.pop = nn.Linear(max(population_dim, 1), n_genes)

    def forward(self, x_t, t, cond):
        return self.lin(torch.cat([x_t, t[..., None]], -1)) + self.pop(cond.population)[:, None, :]


class Undeclared(Backbone):
    '''Reads the conditioner's embedding but declares only control cells.'''

    requires = frozenset({"control"})

    def __init__(self, n_genes: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.lin = nn.Linear(n_genes + 1, n_genes)
        self.emb = nn.Linear(max(cond_dim, 1), n_genes)

    def forward(self, x_t, t, cond):
        return self.lin(torch.cat([x_t, t[..., None]], -1)) + self.emb(cond.embedding)[:, None, :]
"""


def test_the_cheap_checks_give_a_backbone_what_it_declares_and_only_that(plugins, monkeypatch):
    """A backbone that declares `population` was refused as broken (the checks never gave it one: "raised TypeError:
    linear(): argument 'input' must be Tensor, not NoneType"); one that reads the embedding without declaring it passed
    them, then failed inside training once a model without a conditioner gave it none."""
    from distgen.backbones.base import Backbone
    from distgen.testing.fixtures import tiny_info

    plugins.install("fake-nets", "fake_nets", BACKBONES, {"pop": "fake_nets:Population", "undeclared": "fake_nets:Undeclared"},
               group="distgen.backbones")
    reg = Registry("backbones", Backbone)
    _use(monkeypatch, reg)
    info = tiny_info()
    net = build_component("backbones", "pop", info=info, n_genes=info.n_genes, population_dim=5)
    assert net.pop.in_features == 5
    with pytest.raises(PluginCheckError, match=r"'undeclared' from plugin 'fake-nets'.*without an embedding.*does not declare 'embedding'"):
        build_component("backbones", "undeclared", info=info, n_genes=info.n_genes, cond_dim=8)


AUTHOR_MISTAKES = """
from typing import Callable

import torch

from distgen.encoders.mean import MeanEmbedding
from distgen.models.base import FittedModel


class NoPredict(FittedModel):
    '''A model that forgot predict.'''

    def fit(self, train, **kwargs):
        return self


class NeedsLib(MeanEmbedding):
    '''Imports an optional library when built.'''

    def __init__(self, n_genes: int) -> None:
        import not_installed_lib_xyz  # noqa: F401
        super().__init__(n_genes)


class ObjectDefault(MeanEmbedding):
    '''Has a default a config cannot hold.'''

    def __init__(self, n_genes: int, act: Callable = torch.relu) -> None:
        super().__init__(n_genes)
        self.act = act
"""


def test_an_abstract_plugin_component_is_refused_at_load_naming_what_it_lacks(plugins):
    """A model without predict failed at construction with TypeError "Can't instantiate abstract class" (an internal error)."""
    from distgen.models.base import PerturbationModel

    plugins.install("fake-author", "fake_author", AUTHOR_MISTAKES, {"nopredict": "fake_author:NoPredict"}, group="distgen.models")
    reg = Registry("models", PerturbationModel)
    with pytest.warns(RuntimeWarning, match="fake-author"), pytest.raises(PluginLoadError, match=r"'nopredict' from 'fake-author'.*is abstract: it does not implement predict"):
        reg.get("nopredict")


def test_a_plugin_constructor_failure_names_the_plugin(plugins, monkeypatch):
    """An ImportError from a plugin's constructor reached the CLI as "internal error ... (at fake_author.py:20)"."""
    from distgen.registry import PluginBuildError

    plugins.install("fake-author2", "fake_author2", AUTHOR_MISTAKES, {"needslib": "fake_author2:NeedsLib"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    _use(monkeypatch, reg)
    with pytest.raises(PluginBuildError, match=r"'needslib' from plugin 'fake-author2' \(fake_author2:NeedsLib\) failed to build: "
                       r"ModuleNotFoundError: No module named 'not_installed_lib_xyz'"):
        build_component("encoders", "needslib", n_genes=4)
    from distgen.cli import classify

    code, message = classify(PluginBuildError("x"))
    assert code == 1 and message == "error: x"


CATCH_ALL = """
from distgen.encoders.mean import MeanEmbedding

class Wrapped(MeanEmbedding):
    '''A wrapper passing everything on.'''

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
"""


def test_a_plugin_constructor_taking_args_and_kwargs_is_told_to_name_its_parameters(plugins, monkeypatch):
    """A wrapper with ``*args, **kwargs`` got no n_genes ("missing 1 required positional argument") and every key of its
    node was "unknown ... Valid keys: (none)", neither saying why."""
    from distgen.registry import PluginBuildError

    plugins.install("fake-catchall", "fake_catchall", CATCH_ALL, {"wrapped": "fake_catchall:Wrapped"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    _use(monkeypatch, reg)
    with pytest.raises(PluginBuildError, match=r"missing 1 required positional argument: 'n_genes'.*Wrapped's constructor takes "
                       r"\*args/\*\*kwargs, which a config cannot set and assembly does not fill: name each parameter"):
        build_component("encoders", "wrapped", n_genes=4)
    with pytest.raises(ConfigError, match=r"unknown key 'width'. Valid keys: \(none\). Wrapped's constructor takes \*args"):
        validate_node("encoders", {"name": "wrapped", "width": 3})


NO_DOC = """
from distgen.encoders.mean import MeanEmbedding

class NoDoc(MeanEmbedding):
    pass
"""


def test_a_plugin_class_without_a_docstring_is_not_listed_with_its_base_class_summary(plugins, monkeypatch):
    """inspect.getdoc inherits: a subclass of MeanEmbedding without a docstring was listed as 'Mean expression of the set
    ...'."""
    plugins.install("fake-nodoc", "fake_nodoc", NO_DOC, {"nodoc": "fake_nodoc:NoDoc"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    _use(monkeypatch, reg)
    infos = {i.name: i for i in reg.infos()}
    assert infos["nodoc"].summary == "" and infos["mean"].summary.startswith("Mean expression of the set")


def test_a_default_a_config_cannot_hold_stays_out_of_the_resolved_config(plugins, monkeypatch, tmp_path):
    """A callable default reached the resolved config, and writing the run's config.yaml failed (yaml RepresenterError,
    an internal error before training)."""
    from distgen.config import resolve_node, save_yaml

    plugins.install("fake-author3", "fake_author3", AUTHOR_MISTAKES, {"objdefault": "fake_author3:ObjectDefault"})
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    _use(monkeypatch, reg)
    node = resolve_node("encoders", {"name": "objdefault"})
    assert node == {"name": "objdefault"}
    save_yaml({"model": node}, tmp_path / "config.yaml")
    assert build_component("encoders", node, n_genes=4).act is torch.relu  # built again, the default applies


@pytest.mark.parametrize("name", [3, None, "", " padded"])
def test_a_name_a_config_cannot_spell_is_refused_and_the_kind_keeps_working(name):
    """A non-string name was accepted and then broke names() of the whole kind (sorting str with int)."""
    from distgen.registry import RegistryError

    reg = Registry("encoders", Encoder, BUILTIN_MEAN)

    class Odd(Encoder):
        """Oddly named."""

    with pytest.raises(RegistryError, match="not a valid component name"):
        reg.add(name, Odd)
    assert {"kme", "mean"} <= set(reg.names()) and name not in reg._entries


LIARS = """
from distgen.capabilities import ConditionerCapabilities
from distgen.conditioners.onehot import OneHotConditioner
from distgen.encoders.mean import MeanEmbedding


class HidesBatches(OneHotConditioner):
    '''A learned row per batch, declared as none.'''

    def __init__(self, info, seen_perturbations=None, dim: int = 8) -> None:
        super().__init__(info, seen_perturbations, dim=dim, use_batch=True)
        self.capabilities = ConditionerCapabilities(embeds_batches=False)


class FullPanelOnly(MeanEmbedding):
    '''Reads exactly its genes, without declaring a fixed panel.'''

    def distance(self, p, p_mask, q, q_mask):
        if p.shape[-1] != self.dim:
            raise RuntimeError(f"expected {self.dim} genes")
        return super().distance(p, p_mask, q, q_mask)
"""


def test_capabilities_that_lie_are_named_at_the_first_build(plugins, monkeypatch):
    """A conditioner that embeds batches but declares embeds_batches=False passed the first-build checks, and the
    pre-flight then let an untrained batch row predict silently; an encoder that cannot score gene subsets without
    declaring fixed_gene_panel failed inside a training step under genes_per_step. The contract suite caught both;
    a plugin whose author did not run it was accepted."""
    from distgen.conditioners.base import Conditioner
    from distgen.testing.fixtures import tiny_info

    plugins.install("fake-liars", "fake_liars", LIARS, {"hides_batches": "fake_liars:HidesBatches"}, group="distgen.conditioners")
    with (plugins.root / "fake-liars-0.3.dist-info" / "entry_points.txt").open("a") as fh:
        fh.write("[distgen.encoders]\nfull_panel = fake_liars:FullPanelOnly\n")
    reg = Registry("conditioners", Conditioner)
    _use(monkeypatch, reg)
    with pytest.raises(PluginCheckError, match=r"'hides_batches' from plugin 'fake-liars'.*embeds_batches is False but swapping the batches changes"):
        build_component("conditioners", "hides_batches", info=tiny_info())
    _use(monkeypatch, Registry("encoders", Encoder, BUILTIN_MEAN))
    with pytest.raises(PluginCheckError, match=r"'full_panel' from plugin 'fake-liars'.*fails on a subset of the genes.*fixed_gene_panel=True"):
        build_component("encoders", "full_panel", n_genes=12)


def test_a_name_declared_in_a_misspelt_group_is_pointed_out(plugins):
    """An entry point in `distgen.encoder` (singular) is never read: the name was just "unknown", with no word on why."""
    plugins.install("fake-typo", "fake_typo", GOOD, {"plugged": "fake_typo:Plugged"}, group="distgen.encoder")
    reg = Registry("encoders", Encoder, BUILTIN_MEAN)
    with pytest.raises(UnknownComponentError, match=r"unknown encoders component 'plugged'.*Plugin 'fake-typo' declares 'plugged' in the "
                       r"entry-point group 'distgen.encoder', which distgen does not read \(did you mean 'distgen.encoders'\?\)"):
        reg.get("plugged")
    plugins.install("fake-kind", "fake_kind", GOOD, {"other_kind": "fake_kind:Plugged"}, group="distgen.kernels")
    reg.discover(refresh=True)
    with pytest.raises(UnknownComponentError, match="Plugin 'fake-kind' provides 'other_kind' as a kernels component, not encoders"):
        reg.get("other_kind")
