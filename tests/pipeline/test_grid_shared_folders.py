"""A grid whose runs would share a run folder is refused naming them: the first two runs of a folder and the first three
folders, each with a count of those left out (the rest were dropped without a word)."""

import pytest

from distgen.config import ConfigError
from distgen.pipeline.grid import expand


def test_a_folder_shared_by_three_runs_names_each_and_folders_past_three_are_counted():
    values = ["a b", "a-b", "a/b", "c d", "c-d", "e f", "e-f", "g h", "g-h", "i j", "i-j"]
    with pytest.raises(ConfigError, match="share one run folder") as info:
        expand({"description": values})
    text = str(info.value)
    # the three runs of runs/description=a-b__seed0: the third was left out of the refusal
    assert "description=a b and description=a-b (and 1 more run) -> runs/description=a-b__seed0" in text, text
    assert "runs/description=e-f__seed0; and 2 more shared folders)" in text, text  # g-h and i-j: counted, not dropped


def test_two_runs_of_one_shared_folder_are_named_as_before():
    with pytest.raises(ConfigError) as info:
        expand({"description": ["a b", "a-b"]})
    assert "(description=a b and description=a-b -> runs/description=a-b__seed0): their names" in str(info.value)
