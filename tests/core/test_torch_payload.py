"""torch tensors in payloads: what survives the round trip, devices, and torch staying optional.

The memory bounds (a 512 MiB model written and loaded under an address-space limit) are in
``tests/reliability/test_torch_memory.py``. No GPU runs here: the CUDA tests run where one
exists and are skipped elsewhere; the device path itself (chunks through the host buffer, the
device mapping) is tested on the CPU.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from support import import_torch

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import devices, payload, tensors
from jupyter_slurm_ckpt.core.devices import Placement, map_device

torch = import_torch()
nn = torch.nn
MB = 1024**2
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (CPU build or no GPU)"
)


def round_trip(obj: Any, tmp_path: Path) -> Any:
    path = tmp_path / "state.pkl"
    size = payload.dump(obj, path)
    assert size == path.stat().st_size == payload.serialized_size(obj)
    return payload.load(path)


def shares_memory(a: Any, b: Any) -> bool:
    return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


class TiedModel(nn.Module):
    """Two parameters sharing a storage, a view of a buffer, a frozen parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight  # tied: one storage, one Parameter
        self.frozen = nn.Parameter(torch.randn(4, 4), requires_grad=False)
        self.register_buffer("table", torch.arange(24, dtype=torch.float64).reshape(4, 6))
        self.column = self.table[:, 2]  # a view of a buffer (strided)


def test_model_optimizer_and_scheduler_come_back_the_same(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TiedModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(2):
        model.head(model.embed(torch.tensor([1, 2, 3]))).sum().backward()
        optimizer.step()
        scheduler.step()
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}

    loaded = round_trip(state, tmp_path)

    back, opt = loaded["model"], loaded["optimizer"]
    assert back.head.weight is back.embed.weight and isinstance(back.head.weight, nn.Parameter)
    assert back.embed.weight.requires_grad and not back.frozen.requires_grad
    assert shares_memory(back.column, back.table)
    assert back.column.stride() == (6,) and back.column.storage_offset() == 2
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
        assert back.state_dict()[name].dtype == tensor.dtype
    back.table[0, 2] = -1.0  # still a view after the load
    assert back.column[0] == -1.0
    # The optimizer's state is keyed by the very parameters of the loaded model.
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in back.parameters()]
    assert torch.equal(opt.state[back.embed.weight]["exp_avg"],
                       optimizer.state[model.embed.weight]["exp_avg"])
    assert loaded["scheduler"].optimizer is opt
    assert loaded["scheduler"].get_last_lr() == scheduler.get_last_lr()


def test_dtypes_shapes_and_layouts(tmp_path: Path) -> None:
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    tensors_in = {
        "transposed": base.transpose(0, 2),  # non-contiguous, shares base's storage
        "base": base,
        "bf16": torch.randn(7).to(torch.bfloat16),
        "half": torch.randn(3, 3).half(),
        "float8": torch.randn(8).to(torch.float8_e4m3fn),  # rebuilt from an untyped storage
        "uint16": torch.tensor([1, 2, 65535], dtype=torch.uint16),
        "complex": torch.randn(4, dtype=torch.complex64),
        "bool": torch.tensor([True, False, True]),
        "int64": torch.tensor([2**62, -1]),
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 3),
        "meta": torch.empty(2, 3, device="meta"),
        "storage": torch.arange(4, dtype=torch.uint8).untyped_storage(),
        "grad": torch.ones(2, requires_grad=True),
    }
    loaded = round_trip(tensors_in, tmp_path)
    assert shares_memory(loaded["transposed"], loaded["base"])
    assert loaded["transposed"].stride() == tensors_in["transposed"].stride()
    for name, tensor in tensors_in.items():
        if name == "storage":
            assert isinstance(loaded[name], torch.UntypedStorage)
            assert bytes(loaded[name]) == bytes(tensor)
            continue
        got = loaded[name]
        assert (got.dtype, got.shape, got.device) == (tensor.dtype, tensor.shape, tensor.device)
        if name != "meta":
            assert torch.equal(got.view(torch.uint8) if got.dtype.itemsize == 1 else got,
                               tensor.view(torch.uint8) if tensor.dtype.itemsize == 1 else tensor)
    assert loaded["grad"].requires_grad


def test_loaded_tensors_own_fresh_writable_memory(tmp_path: Path) -> None:
    weights = torch.randn(1000)
    loaded = round_trip(weights, tmp_path)
    assert not shares_memory(loaded, weights)
    loaded += 1  # writable, and not the original's memory
    assert torch.equal(loaded, weights + 1)


def test_a_storage_is_written_from_its_own_memory(tmp_path: Path) -> None:
    # The pickle holds the storage's bytes as they are, once, however many tensors use it.
    weights = torch.arange(MB // 4, dtype=torch.float32)
    views = [weights[i::7] for i in range(7)]
    data = payload.serialize({"weights": weights, "views": views})
    assert len(data) < weights.nbytes + 64 * 1024
    assert bytes(weights.numpy()) in data


def test_job_results_hold_state_dicts(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    executor = submitit.LocalExecutor(tmp_path / "jobs")
    job = executor.submit(state_dict_of, model)
    result = job.result()
    assert list(result) == list(model.state_dict())
    assert all(torch.equal(result[k], v) for k, v in model.state_dict().items())


def state_dict_of(model: Any) -> dict[str, Any]:
    return dict(model.state_dict())


# -- torch stays optional ------------------------------------------------------------------------


def test_torch_is_imported_only_by_a_payload_that_holds_tensors(tmp_path: Path) -> None:
    path = tmp_path / "tensors.pkl"
    payload.dump({"w": torch.ones(3)}, path)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from jupyter_slurm_ckpt.core import payload
        import jupyter_slurm_ckpt
        payload.dump({{"plain": [1, 2]}}, Path({str(tmp_path)!r}) / "plain.pkl")
        payload.load(Path({str(tmp_path)!r}) / "plain.pkl")
        assert "torch" not in sys.modules, "torch imported without a tensor"
        loaded = payload.load(Path({str(path)!r}))
        assert "torch" in sys.modules and loaded["w"].tolist() == [1.0, 1.0, 1.0]
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- devices -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("saved", "writer", "here", "expected"),
    [
        (0, 0, Placement(visible=1), "cuda:0"),  # one GPU per task, other node: its GPU
        (3, 3, Placement(visible=1), "cuda:0"),  # written on a node's 4th GPU
        (1, 0, Placement(visible=2), "cuda:1"),  # one task over two GPUs: the layout kept
        (1, 0, Placement(visible=1), "cuda:0"),  # fewer GPUs than the writer had: wrapped
        (0, 0, Placement(visible=2, own=1), "cuda:1"),  # rank 0's checkpoint, local rank 1
        (1, 0, Placement(visible=4, own=2), "cuda:3"),
        (0, 0, Placement(visible=0), "cpu"),  # no GPU: the CPU
        (0, 0, Placement(visible=0, own=0), "cpu"),
    ],
)
def test_device_mapping(saved: int, writer: int, here: Placement, expected: str) -> None:
    assert map_device("cuda", saved, writer, here) == expected


def test_the_own_device_is_the_local_rank_among_the_visible(monkeypatch: Any) -> None:
    monkeypatch.setenv("SLURM_LOCALID", "3")
    module = type("FakeCuda", (), {"is_available": staticmethod(lambda: True),
                                   "device_count": staticmethod(lambda: 2)})
    # No GPU here: torch.cuda's answers are replaced to exercise the arithmetic.
    monkeypatch.setattr(devices, "_device_module", lambda device_type: module)
    assert devices.placement("cuda") == Placement(visible=2, own=1)


def test_tensors_saved_on_a_gpu_load_on_the_cpu_with_a_warning_where_there_is_none() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the tensors load onto it")
    devices._warned.discard("cuda")
    with pytest.warns(RuntimeWarning, match=r"saved on cuda:1, but no cuda device is visible"):
        storage = tensors.device_target(64, "cuda", 1, 0)
    assert storage.device.type == "cpu" and storage.nbytes() == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        tensors.device_target(8, "cuda", 0, 0)


@pytest.fixture
def cpu_as_a_device(monkeypatch: Any) -> None:
    """CPU storages take the device path (no GPU here), in chunks of 1000 bytes."""
    monkeypatch.setattr(tensors, "is_staged", lambda device: device.type != "meta")
    monkeypatch.setattr(tensors, "STAGING_BYTES", 1000)


def test_device_storages_go_through_the_host_buffer_in_chunks(
    cpu_as_a_device: None, tmp_path: Path
) -> None:
    model = TiedModel()
    odd = torch.arange(2501, dtype=torch.uint8)  # 3 chunks, the last one short
    loaded = round_trip({"model": model, "odd": odd, "view": odd[5:]}, tmp_path)
    assert torch.equal(loaded["odd"], odd) and shares_memory(loaded["view"], loaded["odd"])
    assert loaded["model"].head.weight is loaded["model"].embed.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded["model"].state_dict()[name], tensor), name


def test_a_chunk_s_host_memory_is_freed_once_copied(cpu_as_a_device: None) -> None:
    target = tensors.device_target(10, "cpu", 0, 0)
    chunk = bytearray(b"0123456789")
    assert tensors.fill_chunk(target, 0, chunk) is None
    assert bytes(target) == b"0123456789" and len(chunk) == 0


def test_counting_a_device_state_copies_nothing(
    cpu_as_a_device: None, monkeypatch: Any
) -> None:
    copied: list[int] = []
    real_as_bytes = tensors._as_bytes
    monkeypatch.setattr(tensors, "_as_bytes", lambda s: copied.append(1) or real_as_bytes(s))
    state = {"weights": torch.ones(3000)}
    size = payload.pickled_size(state)
    assert copied == [] and size > 12000
    assert size == len(payload.serialize(state)) - len(payload.header()) and copied


@needs_cuda
def test_cuda_tensors_come_back_on_the_gpu(tmp_path: Path) -> None:
    model = TiedModel().cuda()
    loaded = round_trip({"model": model}, tmp_path)["model"]
    assert loaded.embed.weight.device == torch.device("cuda", 0)
    assert loaded.head.weight is loaded.embed.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


@needs_cuda
def test_a_cuda_state_is_written_without_a_host_copy_of_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import resource, torch
        from pathlib import Path
        from jupyter_slurm_ckpt.core import payload
        state = [torch.ones(64 * 1024**2 // 4, device="cuda") for _ in range(8)]  # 512 MiB
        torch.cuda.synchronize()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        payload.dump(state, Path({str(tmp_path / "gpu.pkl")!r}))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) <= 64, f"{done.stdout} MiB of host memory to write"
