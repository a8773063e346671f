"""What every slate agent shares: the hyperparameters, the acting interface and the update contract.

Agents are ensembles over seeds (leading dimension S). The episode loop (``rl4rec.slate.loop``)
calls ``begin`` with the reset observation, ``act`` once per turn, stores the trajectory, and
``update`` with a sampled batch. Everything is a tensor op over (S, B, ...): no Python loop over
users, seeds, items or slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rl4rec.config import field


@dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters of the agents (spec §5-6; paper values as defaults)."""

    gamma: float = field(0.8, "discount factor", ge=0.0, le=1.0)
    hidden: tuple[int, ...] = field((256,), "hidden layers of policy / Q networks")
    state_dim: int = field(20, "belief state size (GRU hidden)", ge=1)
    belief_item_dim: int = field(20, "item-embedding size inside the belief encoders", ge=1)
    lr_q: float = field(1e-3, "Adam lr of Q networks + critic belief", gt=0.0)
    lr_pi: float = field(3e-3, "Adam lr of the policy + actor belief (SAC, REINFORCE)", gt=0.0)
    lr_alpha: float = field(1e-3, "Adam lr of SAC's log-alpha", gt=0.0)
    alpha: float = field(0.2, "SAC entropy weight at start (the official code uses it for the first update only)", gt=0.0)
    auto_entropy: bool = field(True, "SAC: learn alpha towards target entropy -A")
    fix_alpha_init: bool = field(False, "fixed: log-alpha starts at log(alpha) (official: 0, so alpha jumps to 1 after one update)")
    tau: float = field(0.002, "Polyak rate of the target networks (every update)", gt=0.0, le=1.0)
    slateq_eps_decay: float = field(1000.0, "SlateQ: epsilon = 0.01 + 0.99 exp(-iteration / decay)", gt=0.0)
    fix_slateq_divpen: bool = field(False, "fixed: SlateQ's diversity-penalty check per next slate (official: batch-wide)")
    fix_reinforce_random_phase: bool = field(False, "fixed: REINFORCE does not update on the uniform random-phase episodes")
    fix_wknn: bool = field(False, "fixed WkNN: MF item table, the chosen slate in Q(s, a), one slot-major action layout")


class SlateAgent(nn.Module):
    """Interface of an agent; see the module docstring."""

    #: shape and dtype of what the buffer stores as the action of one turn
    action_shape: tuple[int, ...] = ()
    action_dtype: torch.dtype = torch.float32
    #: whether the buffer must keep the per-turn user vectors (SlateQ's privileged target)
    needs_users: bool = False
    #: buffer capacity / batch override (REINFORCE: 1 / 1)
    on_policy: bool = False
    #: attributes holding the optimizers and the random generators: declared, so a checkpoint
    #: saves exactly these (tested against the agent's attributes)
    OPTIMIZERS: tuple[str, ...] = ()
    GENERATORS: tuple[str, ...] = ("generator",)
    #: attribute holding the belief encoder that tracks the acting state
    BELIEF = "actor_belief"

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {name: getattr(self, name) for name in self.OPTIMIZERS}

    def generators(self) -> dict[str, torch.Generator]:
        return {name: getattr(self, name) for name in self.GENERATORS}

    def to_device(self, device: torch.device | str) -> SlateAgent:
        """Move a freshly built agent to ``device``: its parameters and buffers (the optimizers keep
        the same parameter objects) and its random generators, re-created there from their seeds.

        Networks are always initialised on the CPU, so a seed gives the same initial weights on
        every device; what is drawn during training comes from the device's own generator. Call it
        before any draw (a generator that has been used cannot be re-created from its seed).
        """
        device = torch.device(device)
        if device.type == "cpu":
            return self
        self.to(device)
        for name, gen in self.generators().items():
            setattr(self, name, torch.Generator(device=device).manual_seed(gen.initial_seed()))
        return self

    def begin(self, obs: dict[str, torch.Tensor]) -> Any:
        """Acting state from the reset observation (the first step of the acting belief)."""
        return getattr(self, self.BELIEF).step(None, obs["slate"], obs["clicks"])

    def observe(self, state: Any, obs: dict[str, torch.Tensor] | None) -> Any:
        """Acting state after ``obs``; ``None`` (first turn: ``begin`` has seen it) keeps ``state``."""
        return state if obs is None else getattr(self, self.BELIEF).step(state, obs["slate"], obs["clicks"])

    def act(
        self, state: Any, obs: dict[str, torch.Tensor], *, deterministic: bool, random_phase: bool, iteration: int, sim: Any
    ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Returns (new state, slates (S, B, K), stored action (S, B, *action_shape))."""
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
        raise NotImplementedError

    def compile_turns(self) -> None:
        """Compile the tensor work of :meth:`act` (SAC does); an agent without it acts eagerly."""

    def should_update(self, iteration: int, random_steps: int, buffer_size: int, batch_size: int) -> bool:
        return iteration >= random_steps and buffer_size >= batch_size


def uniform_slates(shape: tuple[int, ...], num_items: int, generator: torch.Generator) -> torch.Tensor:
    """i.i.d. uniform item ids (duplicates possible): the official random policy."""
    return torch.randint(0, num_items, shape, generator=generator)


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = sum_{t' >= t} gamma^(t'-t) r_t' along the last dim, as one matmul (no time loop)."""
    t = rewards.shape[-1]
    idx = torch.arange(t, dtype=rewards.dtype)
    power = idx.unsqueeze(0) - idx.unsqueeze(1)  # [t, t'] = t' - t
    weights = torch.where(power >= 0, torch.pow(torch.tensor(gamma, dtype=rewards.dtype), power.clamp(min=0)), torch.zeros(()))
    return rewards @ weights.T


def first_click(slates: torch.Tensor, clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Item at the smallest clicked slot and whether there was a click: (..., K) -> (...), (...)."""
    clicked = clicks > 0
    k = clicks.shape[-1]
    slot = torch.where(clicked, torch.arange(k), torch.full_like(slates, k)).amin(-1).clamp(max=k - 1)
    return slates.gather(-1, slot.unsqueeze(-1)).squeeze(-1), clicked.any(-1)
