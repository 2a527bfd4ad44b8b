import torch

from distgen.train.state_io import atomic_write_text, flatten, load_state, save_state, unflatten


def test_round_trip_keeps_types(tmp_path):
    obj = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, "w.bias": {"m": torch.ones(2)}},
        "groups": [{"betas": (0.9, 0.99), "lr": 1e-3, "params": ["a", "b"], "fused": None}],
        "rng": torch.get_rng_state(),
    }
    save_state(obj, tmp_path / "opt")
    back = load_state(tmp_path / "opt")
    assert set(back["state"]) == {0, "w.bias"}
    assert torch.equal(back["state"][0]["exp_avg"], obj["state"][0]["exp_avg"])
    assert back["groups"][0]["betas"] == (0.9, 0.99) and back["groups"][0]["fused"] is None
    assert torch.equal(back["rng"], obj["rng"])


def test_unstorable_objects_are_refused():
    import pytest

    with pytest.raises(TypeError, match="without pickle"):
        flatten({"x": object()})


def test_unflatten_inverse_of_flatten():
    obj = [1, "a", {"k": (torch.arange(3), 2.5)}]
    skel, tensors = flatten(obj)
    back = unflatten(skel, tensors)
    assert back[:2] == [1, "a"] and torch.equal(back[2]["k"][0], torch.arange(3)) and back[2]["k"][1] == 2.5


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "latest"
    atomic_write_text(p, "one\n")
    atomic_write_text(p, "two\n")
    assert p.read_text() == "two\n" and [f.name for f in tmp_path.iterdir()] == ["latest"]
