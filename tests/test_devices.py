"""Devices and threads: a wrong device is named as such before any checkpoint is read."""
from __future__ import annotations

import pytest
import torch

import adaptive_mbrl as am
from adaptive_mbrl.devices import resolve_device, set_threads


def test_cpu_forms_resolve() -> None:
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("device, words", [
    ("banana", r"device 'banana' is not a torch device; allowed: 'cpu', 'cuda', 'cuda:<index>', 'mps'"),
    ("cuda:x", "is not a torch device"),
    ("meta", "device 'meta' \\(type 'meta'\\) is not supported; allowed: 'cpu'"),
])
def test_a_device_that_is_not_one_names_the_allowed_forms(device: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_says_so() -> None:
    with pytest.raises(ValueError, match="asks for CUDA, but torch.cuda.is_available\\(\\) is False"):
        resolve_device("cuda")


@pytest.mark.parametrize("device, words", [("banana", "is not a torch device"),
                                           ("meta", "is not supported")])
def test_loading_a_shipped_checkpoint_on_a_bad_device_blames_the_device(device: str, words: str) -> None:
    """It used to say "shipped mb.pt: not an adaptive_mbrl checkpoint"."""
    with pytest.raises(ValueError, match=words) as info:
        am.load_controller("shipped:half_cheetah/mb", device=device)
    assert "not an adaptive_mbrl checkpoint" not in str(info.value)
    with pytest.raises(ValueError, match=words):
        am.AdaptiveController.from_checkpoint("shipped:half_cheetah/mb", device=device)


def test_set_threads_sets_torch_and_refuses_non_positive_counts() -> None:
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
        for bad in (0, -2, 1.5, True, "2"):
            with pytest.raises(ValueError, match="threads must be a positive integer or None"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)
