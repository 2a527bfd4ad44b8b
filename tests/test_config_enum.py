"""An ``enum.Enum``-annotated component parameter is set from YAML by a member's name or value."""

import enum

import pytest
import torch

from distgen.config import ConfigError, build_component, resolve_node, validate_node
from distgen.dynamics.time_samplers import TimeSampler
from distgen.registry import registry


class Shape(enum.Enum):
    FLAT = "flat"
    EARLY = "early"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Shaped(TimeSampler):
    """A test time sampler whose behaviour is chosen by two enum parameters."""

    def __init__(self, shape: Shape = Shape.FLAT, level: Level | None = None) -> None:
        self.shape, self.level = shape, level

    def sample(self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        u = torch.rand(shape, device=device, dtype=dtype)
        return u * u if self.shape is Shape.EARLY else u


@pytest.fixture
def shaped():
    reg = registry("time_samplers")
    reg.add("test_shaped", Shaped)
    yield "test_shaped"
    reg.unregister("test_shaped")


@pytest.mark.parametrize("given", ["early", "EARLY", Shape.EARLY])
def test_a_member_name_or_value_builds_the_member(shaped, given):
    obj = build_component("time_samplers", {"name": shaped, "shape": given})
    assert obj.shape is Shape.EARLY


def test_an_int_enum_takes_its_value_or_name_and_none_where_optional(shaped):
    assert build_component("time_samplers", {"name": shaped, "level": 2}).level is Level.HIGH
    assert build_component("time_samplers", {"name": shaped, "level": "LOW"}).level is Level.LOW
    assert build_component("time_samplers", {"name": shaped, "level": None}).level is None


@pytest.mark.parametrize("bad", ["late", 3, True, ["flat"]])
def test_another_value_is_refused_with_the_allowed_ones(shaped, bad):
    with pytest.raises(ConfigError) as err:
        validate_node("time_samplers", {"name": shaped, "shape": bad, "level": 1})
    msg = str(err.value)
    assert "shape" in msg and "FLAT" in msg and "EARLY" in msg


def test_an_int_enum_refuses_a_bool_and_an_unknown_value(shaped):
    for bad in (True, 7, "MEDIUM"):
        with pytest.raises(ConfigError, match="LOW"):
            validate_node("time_samplers", {"name": shaped, "level": bad})


def test_the_resolved_node_writes_a_member_so_that_it_builds_again(shaped):
    node = resolve_node("time_samplers", {"name": shaped, "shape": "early"})
    default = resolve_node("time_samplers", shaped)
    assert default["shape"] == "FLAT"  # the default member is written (by name), not dropped
    assert build_component("time_samplers", node).shape is Shape.EARLY
    assert build_component("time_samplers", default).shape is Shape.FLAT
