"""``distgen.fit`` under torchrun with ``train.strategy=fsdp`` trains the caller's model in place, sharded: its parameters
are FSDP shards (``DTensor``) on every rank. Predicting with it crashed inside the model ("aten.embedding.default got mixed
torch.Tensor and DTensor", an internal error, as ``distgen run`` did before it reloaded the whole weights). Now
``distgen.predict`` refuses such a model naming the fix: ``distgen.load_run(RUN_DIR)``, whose checkpoint rank 0
wrote with the gathered weights. Sharded here by ``fully_shard`` in a gloo group of one process."""

import pytest
import torch.distributed as dist

import distgen
from distgen.errors import UsageError

from .conftest import MODEL


@pytest.fixture
def group():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_predict_refuses_a_model_of_fsdp_shards_naming_load_run(group):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0}, hvg=32, set_size=4)
    model = distgen.build({"model": MODEL}, data)
    fully_shard(model, mesh=init_device_mesh("cpu", (1,)))
    with pytest.raises(UsageError) as err:
        distgen.predict(model, data, max_cells=4)
    msg = str(err.value)
    assert "FSDP" in msg and "distgen.load_run" in msg and "Traceback" not in msg
