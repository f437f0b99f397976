"""Cost of one training update of each method with its shipped preset, on a robot's shapes (random data).

    python benchmarks/update_cost.py --robot half_cheetah --threads 1

Prints milliseconds per update and what one update consumes: MB one Adam step on a batch of
``model.batch_size`` transitions; GrBAL / ReBAL one meta-update on ``meta.meta_batch`` segments of M + K
transitions (GrBAL second order); PEARL one SAC + encoder step on ``meta_batch`` tasks x ``batch_size``
transitions with ``context_batch`` context transitions each. Multiply by a method's updates per budget
to estimate its training time on this machine.

``--pets`` adds the probabilistic-ensemble meta-learners (presets ``pets_grbal`` and ``pets_rebal``, the
latter with one encoder shared by the members and with one per member): one meta-update on
``meta_batch`` segments per member, as meta-training draws them.

Columns beside the time (fp32 matmul FLOPs; other operations are not counted):

* ``GFLOP per update``: the matmul FLOPs one update runs, counted from the shapes of the matmuls it
  executes (``torch.utils.flop_counter``: ``2 m k n`` per ``[m, k] @ [k, n]``, the backward pass's matmuls
  included).
* ``floor GFLOP``: what the update's losses need, counted analytically from the network shapes
  (MB and PEARL; ``-`` where not derived). Counting rule, per linear layer ``in -> out`` applied to
  ``rows`` inputs: forward ``2 rows in out``; backward ``2 rows in out`` for the weight gradient if the
  layer's weights are trained by that pass, plus ``2 rows in out`` for the input gradient if anything
  below the layer needs a gradient (trained weights below it, or an input that needs one, e.g. the action
  in SAC's policy loss or the task latent z in PEARL's critic loss). So a trained hidden layer costs 3x
  its forward, a trained first layer 2x, a layer with frozen weights on the way to a differentiable input
  2x, a network evaluated without gradient (a target network) 1x. PEARL (``s = [obs, z]``, ``R`` =
  meta_batch x batch_size rows): encoder on meta_batch x context_batch rows (trained); V on ``s`` (trained)
  and target V on ``s'`` (forward); Q1, Q2 on ``(s, a)`` (trained, gradient to z); the policy on ``s``
  (trained); Q1, Q2 on ``(s, a~pi)`` with frozen weights (gradient to the action).
* ``% of fp32 peak``: executed GFLOP / time, over the fp32 matmul peak of this machine measured here
  (``control_rate.matmul_peak_gflops`` at ``--threads``). ``x floor``: the time over the floor's time at
  that peak (``floor GFLOP / peak``): 1 would be every needed FLOP at peak speed and nothing else.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

import torch
from control_rate import matmul_peak_gflops
from torch.utils.flop_counter import FlopCounterMode

import adaptive_mbrl as am
from adaptive_mbrl.presets import load_preset
from adaptive_mbrl.provenance import provenance_line


def timed(step: Callable[[], None], repeats: int) -> float:
    """Mean milliseconds of ``step`` after two warm-up calls."""
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000


def counted_gflop(step: Callable[[], None]) -> float:
    """Matmul GFLOP one call of ``step`` executes (forward and backward), from the matmuls' shapes."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def linear_flops(rows: int, fan_in: int, fan_out: int, weight_grad: bool, input_grad: bool) -> int:
    """FLOPs of one linear layer on ``rows`` inputs: forward, plus the same again for each gradient."""
    return 2 * rows * fan_in * fan_out * (1 + weight_grad + input_grad)


def mlp_flops(rows: int, sizes: Sequence[int], trained: bool, input_grad: bool = False) -> int:
    """FLOPs of an MLP with layer sizes ``sizes`` on ``rows`` inputs (module docstring's rule): weight
    gradients if ``trained``; input gradients from the top down to the first layer whose input needs none
    (the first layer's only if ``input_grad``). ``trained=False, input_grad=False``: forward only."""
    return sum(linear_flops(rows, n_in, n_out, trained, input_grad or (k > 0 and trained))
               for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])))


def mb_floor(o: int, a: int) -> int:
    """Floor of one MB Adam step: the model trained on ``batch_size`` rows of ``[obs, action]``."""
    model = load_preset("mb").model
    outputs = 2 * o if model.probabilistic else o
    return mlp_flops(model.batch_size, [o + a, *model.hidden_sizes, outputs], trained=True)


def pearl_floor(o: int, a: int) -> int:
    """Floor of one PEARL update (module docstring), with the shipped ``pearl`` preset's shapes."""
    from adaptive_mbrl.baselines import load_baseline_preset
    preset = load_baseline_preset("pearl")
    cfg, h, l = preset.training, preset.sac.hidden_sizes, preset.latent_dim
    rows, s = cfg.meta_batch * cfg.batch_size, o + l
    encoder = mlp_flops(cfg.meta_batch * cfg.context_batch, [2 * o + a + 1, *preset.encoder_hidden, 2 * l], True)
    v_and_target = mlp_flops(rows, [s, *h, 1], True) + mlp_flops(rows, [s, *h, 1], False)
    critics = 2 * mlp_flops(rows, [s + a, *h, 1], True, input_grad=True)
    policy = mlp_flops(rows, [s, *h, 2 * a], True)
    frozen_critics = 2 * mlp_flops(rows, [s + a, *h, 1], False, input_grad=True)
    return encoder + v_and_target + critics + policy + frozen_critics


def mb_step(o: int, a: int) -> tuple[Callable[[], None], str]:
    from adaptive_mbrl.models.dynamics import DynamicsModel
    preset = load_preset("mb")
    model = DynamicsModel(o, a, preset.model)
    optim = torch.optim.Adam(model.parameters(), lr=preset.model.learning_rate)
    n = preset.model.batch_size
    batch = (torch.randn(n, o), torch.rand(n, a) * 2 - 1, torch.randn(n, o))

    def step() -> None:
        optim.zero_grad()
        model.loss(*batch).backward()
        optim.step()
    return step, f"{n} transitions"


def meta_step(name: str, o: int, a: int, overrides: tuple[str, ...] = ()) -> tuple[Callable[[], None], str]:
    from adaptive_mbrl.models.dynamics import DynamicsModel
    from adaptive_mbrl.presets import with_overrides
    from adaptive_mbrl.training.meta_train import build_meta_adapter, make_meta_optimizer
    preset = with_overrides(load_preset(name), list(overrides))
    model = DynamicsModel(o, a, preset.model)
    adapter = build_meta_adapter(model, preset)
    optim = make_meta_optimizer(model, adapter, preset.meta.learning_rate)
    b, m, k, e = preset.meta.meta_batch, preset.adapter.window, preset.meta.future, model.ensemble_size
    lead = (b,) if e == 1 else (e, b)  # an ensemble: each member its own segments, as in meta-training
    obs = torch.randn(*lead, m + k, o)
    act, nxt = torch.rand(*lead, m + k, a) * 2 - 1, obs + 0.1 * torch.randn(*lead, m + k, o)

    def step() -> None:
        loss, _ = adapter.meta_loss(obs, act, nxt, m, preset.meta.first_order)
        if preset.meta.prior_weight > 0:
            loss = loss + preset.meta.prior_weight * model.loss(obs, act, nxt, stacked=e > 1)
        optim.zero_grad()
        loss.backward()
        optim.step()
    return step, f"{b} segments x ({m} + {k}) transitions" + ("" if e == 1 else f" per member x {e} members")


def pearl_step(o: int, a: int) -> tuple[Callable[[], None], str]:
    from adaptive_mbrl.baselines import load_baseline_preset
    from adaptive_mbrl.baselines.pearl import PEARLAgent
    preset = load_baseline_preset("pearl")
    agent = PEARLAgent(o, a, preset)
    t, b, n = preset.training.meta_batch, preset.training.batch_size, preset.training.context_batch
    context = torch.randn(t, n, 2 * o + a + 1)
    batch = (torch.randn(t, b, o), torch.rand(t, b, a) * 2 - 1, torch.randn(t, b), torch.randn(t, b, o),
             torch.zeros(t, b))
    return (lambda: agent.update(context, *batch)), f"{t} tasks x {b} transitions + {n} context"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pets", action="store_true", help="add PE-GrBAL and PE-ReBAL (shared / per-member encoder)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(provenance_line(), flush=True)
    torch.set_num_threads(args.threads)
    env = am.make(args.robot)
    o, a = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    rows = [("MB (Adam step)", *mb_step(o, a), mb_floor(o, a)),
            ("GrBAL (meta-update)", *meta_step("grbal", o, a), None),
            ("ReBAL (meta-update)", *meta_step("rebal", o, a), None),
            ("PEARL (SAC + encoder step)", *pearl_step(o, a), pearl_floor(o, a))]
    if args.pets:
        rows += [("PE-GrBAL (meta-update)", *meta_step("pets_grbal", o, a), None),
                 ("PE-ReBAL, shared encoder (meta-update)", *meta_step("pets_rebal", o, a), None),
                 ("PE-ReBAL, encoder per member (meta-update)",
                  *meta_step("pets_rebal", o, a, ("adapter.encoder_per_member=true",)), None)]
    peak = matmul_peak_gflops(args.threads)
    print(f"\n{args.robot} (obs {o}, action {a}), {args.threads} thread(s), fp32 matmul peak {peak:.1f} GFLOP/s\n")
    print("| method | one update uses | ms per update | GFLOP per update | floor GFLOP | % of fp32 peak | x floor |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, step, what, floor in rows:
        ms = timed(step, args.repeats)
        gflop = counted_gflop(step)
        floor_gflop, ratio = ("-", "-") if floor is None else (f"{floor / 1e9:.3f}", f"{ms * peak / floor * 1e6:.2f}")
        print(f"| {name} | {what} | {ms:.1f} | {gflop:.3f} | {floor_gflop} | {100 * gflop / ms / peak * 1000:.0f}% "
              f"| {ratio} |", flush=True)


if __name__ == "__main__":
    main()
