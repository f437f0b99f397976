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
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

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
    rows = [("MB (Adam step)", *mb_step(o, a)), ("GrBAL (meta-update)", *meta_step("grbal", o, a)),
            ("ReBAL (meta-update)", *meta_step("rebal", o, a)), ("PEARL (SAC + encoder step)", *pearl_step(o, a))]
    if args.pets:
        rows += [("PE-GrBAL (meta-update)", *meta_step("pets_grbal", o, a)),
                 ("PE-ReBAL, shared encoder (meta-update)", *meta_step("pets_rebal", o, a)),
                 ("PE-ReBAL, encoder per member (meta-update)",
                  *meta_step("pets_rebal", o, a, ("adapter.encoder_per_member=true",)))]
    print(f"\n{args.robot} (obs {o}, action {a}), {args.threads} thread(s)\n")
    print("| method | one update uses | ms per update |")
    print("|---|---|---:|")
    for name, step, what in rows:
        print(f"| {name} | {what} | {timed(step, args.repeats):.1f} |", flush=True)


if __name__ == "__main__":
    main()
