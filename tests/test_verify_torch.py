"""verify_checkpoint's default comparison of torch tensors (results holding a state dict)."""

from __future__ import annotations

from support import import_torch

from jupyter_slurm_ckpt.verify.judge import first_difference

torch = import_torch()


def test_equal_tensors_are_equal() -> None:
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor([1, 2]), "b": torch.ones(())}
    copy = {name: tensor.clone() for name, tensor in state.items()}
    assert first_difference(state, copy) is None
    assert first_difference(torch.tensor([float("nan")]), torch.tensor([float("nan")])) is None
    assert first_difference(torch.ones(2, requires_grad=True), torch.ones(2)) is None


def test_the_first_differing_element_is_named() -> None:
    reference = {"w": torch.zeros(2, 3)}
    changed = {"w": torch.zeros(2, 3)}
    changed["w"][1, 2] = 0.5
    assert first_difference(reference, changed) == (
        "result['w']: 1 of 6 elements differ, first at (1, 2): 0.0 (reference) vs 0.5"
    )
    assert first_difference(torch.ones(3), torch.ones(3) + 1e-12) is None  # the tolerance
    assert first_difference(torch.tensor([1, 2]), torch.tensor([1, 3])) == (
        "result: 1 of 2 elements differ, first at (1,): 2 (reference) vs 3"
    )


def test_shapes_dtypes_and_types_differ() -> None:
    assert first_difference(torch.ones(2), torch.ones(3)) == (
        "result: torch.float32 (2,) (reference) vs torch.float32 (3,)"
    )
    assert first_difference(torch.ones(2), torch.ones(2).double()) == (
        "result: torch.float32 (2,) (reference) vs torch.float64 (2,)"
    )
    assert first_difference(torch.ones(2), [1.0, 1.0]) == "result: Tensor (reference) vs list"
