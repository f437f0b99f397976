"""Ensemble MLP layers: same numbers as separate nn.Linear networks, backward work only where a loss needs it."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from adaptive_mbrl.baselines.ensemble_layers import EnsembleMLP, PolyakPairMLP, ensemble_linear


def member_network(layers: list[tuple[torch.Tensor, torch.Tensor]], k: int = 0) -> nn.Sequential:
    """Member ``k`` of ensemble ``layers`` as a plain nn.Linear / ReLU stack (its own copy of the weights);
    also the reference networks of ``test_sac.py``."""
    modules: list[nn.Module] = []
    for i, (weight, bias) in enumerate(layers):
        linear = nn.Linear(weight.shape[2], weight.shape[1])
        with torch.no_grad():
            linear.weight.copy_(weight[k])
            linear.bias.copy_(bias[k, :, 0])
        modules += [linear] + ([nn.ReLU()] if i < len(layers) - 1 else [])
    return nn.Sequential(*modules)


def test_ensemble_mlp_matches_separate_networks_in_values_and_gradients() -> None:
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 4, [8, 6], 2)
    members = [member_network(ens.layers(), k) for k in range(3)]
    x = torch.randn(5, 4)
    out = ens(x)                                                  # shared input -> [E, R, out]
    assert out.shape == (3, 5, 2)
    for k, net in enumerate(members):
        assert torch.allclose(out[k], net(x), atol=1e-6)
    weights = torch.randn(3, 5, 2)
    (out * weights).sum().backward()
    for k, net in enumerate(members):
        (net(x) * weights[k]).sum().backward()
        for i, linear in enumerate(m for m in net if isinstance(m, nn.Linear)):
            assert torch.allclose(getattr(ens, f"weight_{i}").grad[k], linear.weight.grad, atol=1e-5)
            assert torch.allclose(getattr(ens, f"bias_{i}").grad[k, :, 0], linear.bias.grad, atol=1e-5)
    # one input per member
    xs = torch.randn(3, 5, 4)
    assert torch.allclose(ens(xs)[1], members[1](xs[1]), atol=1e-6)


def test_initialisation_is_nn_linear_s_uniform_bound() -> None:
    torch.manual_seed(0)
    ens = EnsembleMLP(2, 100, [50], 1)
    bound = 1 / math.sqrt(100)
    assert ens.weight_0.shape == (2, 50, 100) and ens.bias_0.shape == (2, 50, 1)
    assert ens.weight_0.abs().max() <= bound and ens.weight_0.abs().max() > 0.9 * bound
    assert ens.weight_1.abs().max() <= 1 / math.sqrt(50)
    assert not torch.equal(ens.weight_0[0], ens.weight_0[1])


def test_detached_parameters_give_input_gradients_only_without_weight_matmuls() -> None:
    torch.manual_seed(0)
    ens = EnsembleMLP(2, 4, [8], 1)
    x = torch.randn(5, 4, requires_grad=True)
    ens(x).sum().backward()
    full_grad = x.grad.clone()
    ens.zero_grad(set_to_none=True)
    x.grad = None
    with FlopCounterMode(display=False) as counter:
        ens(x, detach_params=True).sum().backward()
    assert torch.allclose(x.grad, full_grad, atol=1e-6)
    assert all(p.grad is None for p in ens.parameters())
    # forward 2 * R * (4 * 8 + 8 * 1) per member, backward: input gradients only (the same again)
    forward = 2 * 5 * (4 * 8 + 8 * 1) * 2
    assert counter.get_total_flops() == 2 * forward


def test_leading_members_get_exact_gradients_the_rest_none_and_no_backward_matmul() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, requires_grad=True)                  # [E, in, R]
    weight = torch.randn(2, 3, 4, requires_grad=True)
    bias = torch.randn(2, 3, 1, requires_grad=True)
    g = torch.randn(2, 3, 6)
    plain = ensemble_linear(x, weight, bias)
    expected = torch.autograd.grad((plain * g).sum(), (x, weight, bias))
    with FlopCounterMode(display=False) as counter:
        out = ensemble_linear(x, weight, bias, trained=1)
        forward_flops = counter.get_total_flops()
        grads = torch.autograd.grad((out * g).sum(), (x, weight, bias))
    assert torch.allclose(out, plain)
    for got, want in zip(grads, expected):
        assert torch.allclose(got[0], want[0], atol=1e-6)
        assert torch.equal(got[1], torch.zeros_like(got[1]))
    # backward: input and weight gradients of member 0 only, each as costly as member 0's forward
    assert counter.get_total_flops() - forward_flops == forward_flops


def test_polyak_pair_evaluates_online_and_target_together_and_trains_only_the_online_net() -> None:
    torch.manual_seed(0)
    pair = PolyakPairMLP(3, [8, 8], 1)
    assert {n for n, _ in pair.named_parameters()} == {f"{k}_{i}" for k in ("weight", "bias") for i in range(3)}
    with torch.no_grad():
        for _, buf in pair.named_buffers():
            buf.add_(0.1)                                         # a target that differs from the online net
    x, x_next = torch.randn(5, 3), torch.randn(5, 3)
    online, target = pair.pair(x, x_next)
    assert torch.allclose(online, pair(x), atol=1e-6) and torch.allclose(target, pair.target(x_next), atol=1e-6)
    assert not target.requires_grad and online.requires_grad
    reference = member_network(pair.online_layers(), 0)
    assert torch.allclose(online, reference(x), atol=1e-6)
    online.sum().backward()
    reference(x).sum().backward()
    assert torch.allclose(pair.weight_0.grad[0], reference[0].weight.grad, atol=1e-6)
    # Polyak step: target <- (1 - tau) target + tau online
    before = pair.target_weight_1.clone()
    pair.polyak_(0.25)
    assert torch.allclose(pair.target_weight_1, 0.75 * before + 0.25 * pair.weight_1.detach())
