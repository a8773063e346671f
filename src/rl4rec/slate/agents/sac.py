"""SAC with an action-to-slate ranker (GeMS or TopK), spec slate_rl.md §6.1.

Twin Q-networks with Polyak targets, a tanh-Gaussian policy whose output is mapped to the
ranker's action box (``center + scale * tanh(x)``), automatic entropy tuning towards -A, and
separate GRU belief encoders for actor and critic. Update order: Q, policy, alpha, targets.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from rl4rec.slate.agents.base import AgentConfig, SlateAgent
from rl4rec.slate.belief import BeliefEncoder
from rl4rec.slate.nets import EnsembleMLP, descend, frozen, polyak

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class SACAgent(SlateAgent):
    OPTIMIZERS = ("q_opt", "pi_opt", "alpha_opt")

    def __init__(
        self,
        seeds: Sequence[int],
        cfg: AgentConfig,
        ranker: Any,
        center: torch.Tensor,
        scale: torch.Tensor,
        num_items: int,
        rec_size: int,
    ):
        super().__init__()
        self.cfg, self.ranker, self.num_items = cfg, ranker, num_items
        a = center.shape[-1]
        self.action_shape = (a,)
        self.register_buffer("center", center.clone().float())  # (S, A)
        self.register_buffer("scale", scale.clone().float())
        self.actor_belief = BeliefEncoder(seeds, num_items, rec_size, cfg.belief_item_dim, cfg.state_dim, "actor")
        self.critic_belief = BeliefEncoder(seeds, num_items, rec_size, cfg.belief_item_dim, cfg.state_dim, "critic")
        self.policy = EnsembleMLP(seeds, cfg.state_dim, cfg.hidden, 2 * a, "sac/policy")
        self.q1 = EnsembleMLP(seeds, cfg.state_dim + a, cfg.hidden, 1, "sac/q1")
        self.q2 = EnsembleMLP(seeds, cfg.state_dim + a, cfg.hidden, 1, "sac/q2")
        self.q1_target, self.q2_target = (copy.deepcopy(q).requires_grad_(False) for q in (self.q1, self.q2))
        init = math.log(cfg.alpha) if cfg.fix_alpha_init else 0.0
        self.log_alpha = torch.nn.Parameter(torch.full((len(seeds),), init))
        self.target_entropy = -float(a)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters(), *self.critic_belief.parameters()], lr=cfg.lr_q)
        self.pi_opt = torch.optim.Adam([*self.policy.parameters(), *self.actor_belief.parameters()], lr=cfg.lr_pi)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr_alpha)
        self.updates = 0
        self.generator = torch.Generator().manual_seed(int(seeds[0]) + 17)

    # -- policy --------------------------------------------------------------------------
    def _box(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return self.center.view(shape), self.scale.view(shape)

    def sample(self, state: torch.Tensor, *, deterministic: bool = False, noise: torch.Tensor | None = None, log_prob: bool = True):
        """Action in the box and log pi (None when deterministic or not ``log_prob``). ``noise``
        fixes epsilon (tests)."""
        mean, log_std = self.policy(state).chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        center, scale = self._box(mean)
        if deterministic:
            return center + scale * torch.tanh(mean), None
        std = log_std.exp()
        eps = noise if noise is not None else torch.randn(mean.shape, generator=self.generator)
        x = mean + std * eps
        a01 = torch.tanh(x)
        if not log_prob:  # acting needs the action only
            return center + scale * a01, None
        # log N(x; mean, std) - log(1 - tanh(x)^2 + 1e-6), summed over action dims (box map excluded)
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(1 - a01.pow(2) + 1e-6).sum(-1)
        return center + scale * a01, log_prob

    def alpha(self) -> torch.Tensor:
        """Entropy weight per member; the official code uses the flag value for the first update."""
        if not self.cfg.auto_entropy or (self.updates == 0 and not self.cfg.fix_alpha_init):
            return torch.full_like(self.log_alpha, self.cfg.alpha)
        return self.log_alpha.exp().detach()

    # -- acting --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, state, obs, *, deterministic, random_phase, iteration, sim):
        if random_phase:  # uniform over the middle half of the box (spec §3.4)
            state = self.observe(state, obs)
            s, b = state.shape[:2]
            u = torch.rand(s, b, self.center.shape[-1], generator=self.generator)
            action = self.center.unsqueeze(1) + self.scale.unsqueeze(1) * (u - 0.5)
            return state, self.ranker.rank(action), action
        # the noise is drawn before the pure part (a compiled graph takes no generator); the belief
        # step draws nothing, so the stream is the same as drawing it after
        noise = None if deterministic else torch.randn((*state.shape[:2], self.center.shape[-1]), generator=self.generator)
        return self._policy_turn(state, obs, noise)

    def _policy_turn(self, state, obs, noise):
        """Belief step, policy (deterministic when ``noise`` is None) and ranker: the tensor work
        of a turn, which :meth:`compile_turns` compiles."""
        state = self.observe(state, obs)
        action, _ = self.sample(state, deterministic=noise is None, noise=noise, log_prob=False)
        return state, self.ranker.rank(action), action

    def compile_turns(self) -> None:
        """Run :meth:`_policy_turn` through ``torch.compile`` (eager stays the reference)."""
        self._policy_turn = torch.compile(self._policy_turn)

    # -- learning ------------------------------------------------------------------------
    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic and actor belief states of whole trajectories (S, B, T, H)."""
        return self.critic_belief.encode(batch["slates"], batch["clicks"]), self.actor_belief.encode(batch["slates"], batch["clicks"])

    def next_action(self, next_act: torch.Tensor, next_crit: torch.Tensor):
        """a' ~ pi(.|s') as the Q-nets see it, and log pi(a'|s') (WkNN maps it to a slate first)."""
        return self.sample(next_act)

    def q_loss(self, batch: dict[str, torch.Tensor], s_crit: torch.Tensor, s_act: torch.Tensor, alpha: torch.Tensor):
        """Per-member ``0.5 (MSE(Q1, y) + MSE(Q2, y))`` with ``y = r + gamma (1-done) [min Q_target(s', a') - alpha log pi(a'|s')]``."""
        rewards, actions = batch["rewards"], batch["actions"]
        done = torch.zeros_like(rewards)
        done[..., -1] = 1.0
        next_crit = torch.cat([s_crit[:, :, 1:], torch.zeros_like(s_crit[:, :, :1])], 2).detach()
        next_act = torch.cat([s_act[:, :, 1:], torch.zeros_like(s_act[:, :, :1])], 2).detach()
        with torch.no_grad():
            a_next, logp_next = self.next_action(next_act, next_crit)
            sa_next = torch.cat([next_crit, a_next], -1)
            q_next = torch.minimum(self.q1_target(sa_next), self.q2_target(sa_next)).squeeze(-1)
            target = rewards + self.cfg.gamma * (1 - done) * (q_next - alpha.view(-1, 1, 1) * logp_next)
        sa = torch.cat([s_crit, actions], -1)
        q1, q2 = self.q1(sa).squeeze(-1), self.q2(sa).squeeze(-1)
        s = rewards.shape[0]
        loss = 0.5 * (F.mse_loss(q1, target, reduction="none").reshape(s, -1).mean(1) + F.mse_loss(q2, target, reduction="none").reshape(s, -1).mean(1))
        return loss, q1

    def policy_loss(self, s_crit: torch.Tensor, s_act: torch.Tensor, alpha: torch.Tensor, noise: torch.Tensor | None = None):
        """Per-member ``mean(alpha log pi(a~|s) - min(Q1, Q2)(s_critic detached, a~))`` and log pi."""
        a_new, logp = self.sample(s_act, noise=noise)
        sa_pi = torch.cat([s_crit.detach(), a_new], -1)
        with frozen(self.q1, self.q2):  # the policy step needs dQ/da only, not the Q weights' gradients
            q_pi = torch.minimum(self.q1(sa_pi), self.q2(sa_pi)).squeeze(-1)
        s = s_act.shape[0]
        return (alpha.view(-1, 1, 1) * logp - q_pi).reshape(s, -1).mean(1), logp

    def alpha_loss(self, logp: torch.Tensor) -> torch.Tensor:
        """Per-member ``-mean(exp(log alpha) (log pi + target_entropy))`` (log pi detached)."""
        s = logp.shape[0]
        return -(self.log_alpha.exp().view(-1, 1, 1) * (logp.detach() + self.target_entropy)).reshape(s, -1).mean(1)

    def update(self, batch, iteration):
        """One Q step, one policy step, one alpha step, then the Polyak target update (spec order)."""
        s_crit, s_act = self.encode(batch)
        alpha = self.alpha()
        q_loss, q1 = self.q_loss(batch, s_crit, s_act, alpha)
        descend(self.q_opt, q_loss)
        pi_loss, logp = self.policy_loss(s_crit, s_act, alpha)
        descend(self.pi_opt, pi_loss)
        metrics = {"losses/q": q_loss.mean().item(), "losses/pi": pi_loss.mean().item(), "train/q1": q1.mean().item()}
        if self.cfg.auto_entropy:
            a_loss = self.alpha_loss(logp)
            descend(self.alpha_opt, a_loss)
            metrics["losses/alpha"] = a_loss.mean().item()
        polyak(self.q1_target, self.q1, self.cfg.tau)
        polyak(self.q2_target, self.q2, self.cfg.tau)
        self.updates += 1
        metrics["train/alpha"] = self.alpha().mean().item()
        return metrics
