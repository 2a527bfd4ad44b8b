"""Registry: decorators, entry-point discovery, conflicts, broken plugins, unknown names."""

import json
import sys
import textwrap
import warnings

import pytest

from distgen.encoders import Encoder
from distgen.registry import (
    DuplicateComponentError,
    PluginLoadError,
    Registry,
    UnknownComponentError,
    registry,
)


def _fake_dist(root, dist, module, source, entry_points):
    """Install a fake distribution (dist-info + module) under ``root`` for importlib.metadata."""
    info = root / f"{dist}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    lines = ["[distgen.encoders]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
from distgen.encoders.mean import MeanEmbedding

class Plugged(MeanEmbedding):
    '''A plugged-in encoder.'''
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


def test_builtin_lookup_and_info():
    info = registry("encoders").info("mean")
    assert (info.kind, info.name, info.provider) == ("encoders", "mean", "distgen")
    assert info.summary.startswith("Mean expression")
    assert info.capabilities["output_kind"] == "vector"
    json.dumps(info.to_dict())


def test_unknown_name_lists_available_and_suggests():
    with pytest.raises(UnknownComponentError) as err:
        registry("encoders").get("maen")
    msg = str(err.value)
    assert "'maen'" in msg and "Available:" in msg and "mean" in msg and "Did you mean 'mean'" in msg


def test_unknown_kind():
    with pytest.raises(UnknownComponentError, match="unknown component kind 'encoder'"):
        registry("encoder")


def test_entry_point_is_lazy_and_checked(site):
    _fake_dist(site, "fake-good", "fake_good", GOOD, {"plugged": "fake_good:Plugged"})
    reg = Registry("encoders", Encoder)
    reg.discover()
    assert "plugged" in reg.names()
    assert "fake_good" not in sys.modules  # discovery imported nothing
    cls = reg.get("plugged")
    assert issubclass(cls, Encoder) and "fake_good" in sys.modules
    info = reg.info("plugged")
    assert (info.provider, info.version) == ("fake-good", "0.3")


def test_broken_plugin_warns_and_is_skipped(site):
    _fake_dist(site, "fake-broken", "fake_broken", "raise ImportError('boom: missing dependency')", {"broken": "fake_broken:X"})
    reg = Registry("encoders", Encoder)
    reg.add("mean", __import__("distgen.encoders.mean", fromlist=["MeanEmbedding"]).MeanEmbedding)
    with pytest.warns(RuntimeWarning, match="fake-broken.*boom"):
        infos = reg.infos()
    assert "mean" in [i.name for i in infos]  # the rest still works
    assert "broken" not in reg.names()
    with pytest.raises(UnknownComponentError):
        reg.get("broken")


def test_plugin_of_wrong_type_is_rejected(site):
    _fake_dist(site, "fake-wrong", "fake_wrong", "class NotAnEncoder:\n    pass\n", {"wrong": "fake_wrong:NotAnEncoder"})
    reg = Registry("encoders", Encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PluginLoadError, match="not a subclass of distgen.encoders.base.Encoder"):
            reg.get("wrong")


def test_duplicate_names_name_both_providers(site):
    _fake_dist(site, "fake-one", "fake_one", GOOD, {"twin": "fake_one:Plugged"})
    _fake_dist(site, "fake-two", "fake_two", GOOD, {"twin": "fake_two:Plugged"})
    reg = Registry("encoders", Encoder)
    with pytest.raises(DuplicateComponentError) as err:
        reg.discover()
    assert "fake-one" in str(err.value) and "fake-two" in str(err.value)


def test_plugin_clashing_with_builtin(site):
    _fake_dist(site, "fake-clash", "fake_clash", GOOD, {"mean": "fake_clash:Plugged"})
    reg = Registry("encoders", Encoder)
    reg.add("mean", __import__("distgen.encoders.mean", fromlist=["MeanEmbedding"]).MeanEmbedding)
    with pytest.raises(DuplicateComponentError, match="'distgen'.*'fake-clash'"):
        reg.discover()


def test_decorator_duplicate_raises():
    reg = Registry("encoders", Encoder)

    @reg.register("x")
    class A(Encoder):
        """A."""

    with pytest.raises(DuplicateComponentError):

        @reg.register("x")
        class B(Encoder):
            """B."""


def test_import_distgen_survives_broken_plugin(site):
    _fake_dist(site, "fake-broken2", "fake_broken2", "raise RuntimeError('bad plugin')", {"broken2": "fake_broken2:X"})
    import subprocess

    code = "import warnings, distgen; from distgen.api import components; warnings.simplefilter('ignore'); print(len(components()))"
    env_path = str(site) + ":" + ":".join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 5
