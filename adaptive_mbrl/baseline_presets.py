"""Baseline preset types: ``controllers/baselines/<name>.yaml`` -> :class:`PEARLPreset` / :class:`RL2Preset`.

The model-free baselines have no dynamics model or planner, so they have presets of their own, validated as
strictly as :class:`~adaptive_mbrl.presets.ControllerPreset` (unknown keys, wrong types and out-of-range
values name the file and field). They live in ``controllers/baselines/`` so that the model-based preset
list (``controllers/*.yaml``) stays what it is.

This module holds the types only and imports nothing of the package but :mod:`adaptive_mbrl.config`: both
:func:`adaptive_mbrl.presets.load_preset` (which loads every kind of preset) and the baselines package
(which trains and runs them, and imports the training code, which imports :mod:`adaptive_mbrl.presets`)
use it, so neither of those two has to import the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from adaptive_mbrl.config import ConfigError, bounded, from_dict


@dataclass
class SACConfig:
    """SAC v1 (with a state-value network), as used by PEARL.

    Attributes:
        hidden_sizes: hidden layers of the policy, Q1, Q2 and V networks.
        learning_rate: Adam step size of every SAC network.
        gamma: discount per control step.
        tau: Polyak rate of the target V network.
        reward_scale: rewards are multiplied by this in the Q target (PEARL: 5; acts as 1 / temperature).
        alpha: entropy temperature (PEARL keeps 1 and tunes ``reward_scale`` instead).
        policy_reg: weight of the L2 penalty on the policy's pre-tanh mean and log-std (PEARL: 1e-3).
    """

    hidden_sizes: list[int] = bounded([300, 300, 300], lo=1)
    learning_rate: float = bounded(3e-4, lo=0.0, lo_open=True)
    gamma: float = bounded(0.99, lo=0.0, hi=1.0)
    tau: float = bounded(0.005, lo=0.0, hi=1.0)
    reward_scale: float = bounded(5.0, lo=0.0, lo_open=True)
    alpha: float = bounded(1.0, lo=0.0)
    policy_reg: float = bounded(1e-3, lo=0.0)


@dataclass
class PEARLTraining:
    """How PEARL is meta-trained. Environment steps and gradient steps are set independently.

    Attributes:
        train_tasks: size of the fixed pool of training tasks (drawn from the train scenario by seed).
        initial_episodes: episodes per task collected with z from the prior before training.
        iterations: rounds of (collect -> gradient steps).
        tasks_per_iteration: tasks visited per round.
        prior_episodes: per visited task, episodes with z from the prior (they also feed the context buffer).
        posterior_episodes: per visited task, episodes with posterior z (RL buffer only).
        grad_steps: gradient steps per round.
        meta_batch: tasks per gradient step.
        batch_size: RL transitions per task per gradient step.
        context_batch: context transitions per task per gradient step (the most, see ``min_context``).
        min_context: within-episode mode trains on context sizes drawn uniformly from
            [min_context, context_batch] so that the encoder also works on the few transitions seen early in
            an episode; the between-episode mode always uses ``context_batch``.
        context_recent: the context buffer of a task keeps only its latest this many transitions.
        episode_steps: episode length (0 = the robot's own).
    """

    train_tasks: int = bounded(40, lo=1)
    initial_episodes: int = bounded(2, lo=1)
    iterations: int = bounded(100, lo=0)
    tasks_per_iteration: int = bounded(5, lo=1)
    prior_episodes: int = bounded(1, lo=0)
    posterior_episodes: int = bounded(1, lo=0)
    grad_steps: int = bounded(500, lo=0)
    meta_batch: int = bounded(16, lo=1)
    batch_size: int = bounded(256, lo=1)
    context_batch: int = bounded(100, lo=1)
    min_context: int = bounded(1, lo=1)
    context_recent: int = bounded(1000, lo=1)
    episode_steps: int = bounded(0, lo=0)


@dataclass
class PEARLPreset:
    """PEARL (Rakelly et al. 2019): SAC on ``[s, z]`` with a probabilistic context encoder.

    Attributes:
        latent_dim: size of z.
        encoder_hidden: hidden layers of the per-transition encoder ``(s, a, r, s') -> (mu, softplus var)``.
        encoder_lr: Adam step size of the encoder (trained by the critic loss plus the KL term).
        kl_weight: weight of ``KL(q(z | c) || N(0, I))``.
        adapt_within_episode: True: z is re-inferred at every step from the current episode's transitions
            (our mid-episode tests); False: the original protocol, z fixed within an episode and inferred
            from the previous episodes of the same task.
        context_window: within-episode mode: only the latest this many transitions form the context
            (0 = the whole episode so far).
        sample_z: act with a posterior sample of z (posterior sampling); False: with the posterior mean.
    """

    name: str
    kind: Literal["pearl"] = "pearl"
    description: str = ""
    latent_dim: int = bounded(5, lo=1)
    encoder_hidden: list[int] = bounded([200, 200, 200], lo=1)
    encoder_lr: float = bounded(3e-4, lo=0.0, lo_open=True)
    kl_weight: float = bounded(0.1, lo=0.0)
    adapt_within_episode: bool = True
    context_window: int = bounded(32, lo=0)
    sample_z: bool = True
    sac: SACConfig = field(default_factory=SACConfig)
    training: PEARLTraining = field(default_factory=PEARLTraining)


@dataclass
class RL2Training:
    """How RL² is trained: PPO over batches of trials.

    Attributes:
        iterations: PPO iterations.
        trials_per_iteration: trials per iteration (each on its own task).
        num_envs: environments stepped together, one GRU forward per control step for all of them (at
            most ``trials_per_iteration`` are used); an env that finishes a trial starts the iteration's
            next one. More envs: fewer, larger forwards per environment step; 32 is where collection
            speed levelled off in ``benchmarks/env_speed.py`` (cartpole / half_cheetah, GRU 128, CPU).
        episodes_per_trial: episodes of one task per trial; the hidden state carries across them.
        epochs: PPO passes over each iteration's data.
        minibatches: minibatches per epoch (split by trials, each keeps whole sequences).
        episode_steps: episode length (0 = the robot's own).
    """

    iterations: int = bounded(500, lo=0)
    trials_per_iteration: int = bounded(16, lo=1)
    num_envs: int = bounded(32, lo=1)
    episodes_per_trial: int = bounded(2, lo=1)
    epochs: int = bounded(4, lo=1)
    minibatches: int = bounded(4, lo=1)
    episode_steps: int = bounded(0, lo=0)


@dataclass
class RL2Preset:
    """RL² (Duan et al. 2016): a GRU Gaussian policy on (obs, previous action, previous reward, done), PPO.

    Attributes:
        hidden_size: GRU state size.
        embed_size: size of the tanh embedding of the input before the GRU.
        init_log_std: initial log standard deviation of the (state-independent) action noise.
        learning_rate: Adam step size.
        reward_scale: rewards are multiplied by this for the value targets and advantages (not in the
            policy's input); keeps value targets near unit scale.
        gamma, gae_lambda: discount and GAE parameter over a whole trial.
        clip: PPO ratio clip.
        entropy_coef, value_coef: weights of the entropy bonus and the value loss.
        max_grad_norm: clip of the gradient's global norm (0 = none).
    """

    name: str
    kind: Literal["rl2"] = "rl2"
    description: str = ""
    hidden_size: int = bounded(128, lo=1)
    embed_size: int = bounded(32, lo=1)
    init_log_std: float = -0.5
    learning_rate: float = bounded(3e-4, lo=0.0, lo_open=True)
    reward_scale: float = bounded(1.0, lo=0.0, lo_open=True)
    gamma: float = bounded(0.99, lo=0.0, hi=1.0)
    gae_lambda: float = bounded(0.95, lo=0.0, hi=1.0)
    clip: float = bounded(0.2, lo=0.0, lo_open=True)
    entropy_coef: float = bounded(0.01, lo=0.0)
    value_coef: float = bounded(0.5, lo=0.0)
    max_grad_norm: float = bounded(0.5, lo=0.0)
    training: RL2Training = field(default_factory=RL2Training)


BaselinePreset = Union[PEARLPreset, RL2Preset]
KINDS = {"pearl": PEARLPreset, "rl2": RL2Preset}


def baseline_from_dict(data: object, source: str = "<config>", path: str = "") -> BaselinePreset:
    """A baseline preset from plain data; its ``kind`` (``pearl`` or ``rl2``) picks the dataclass."""
    prefix = f"{path}." if path else ""
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        got = data.get("kind") if isinstance(data, dict) else data
        raise ConfigError(source, prefix + "kind", f"{got!r} is not allowed; allowed: {', '.join(map(repr, KINDS))}")
    return from_dict(KINDS[data["kind"]], data, source=source, path=path)
