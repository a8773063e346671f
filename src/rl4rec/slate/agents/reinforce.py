"""REINFORCE with a SoftMax item policy ("REINFORCESlate", spec slate_rl.md §6.2).

Policy: belief state -> 256 -> N item logits. Acting samples 10 items i.i.d. from the softmax
(evaluation: top-10). The update runs on the latest trajectory: for each turn with a click, i is
the item at the smallest clicked slot, ``log alpha_t = log(1 - (1 - pi(i|s_t))^10 + 1e-6)`` (the
probability that i is in a 10-draw slate) and the loss is ``-sum_t G_t log alpha_t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rl4rec.slate.agents.base import AgentConfig, SlateAgent, discounted_returns, first_click, uniform_slates
from rl4rec.slate.belief import BeliefEncoder
from rl4rec.slate.nets import EnsembleMLP, descend


class ReinforceAgent(SlateAgent):
    OPTIMIZERS = ("opt",)

    action_dtype = torch.int16
    on_policy = True

    def __init__(self, seeds: Sequence[int], cfg: AgentConfig, num_items: int, rec_size: int):
        super().__init__()
        self.cfg, self.num_items, self.rec_size = cfg, num_items, rec_size
        self.action_shape = (rec_size,)
        self.actor_belief = BeliefEncoder(seeds, num_items, rec_size, cfg.belief_item_dim, cfg.state_dim, "actor")
        self.policy = EnsembleMLP(seeds, cfg.state_dim, cfg.hidden, num_items, "reinforce/policy")
        self.opt = torch.optim.Adam([*self.policy.parameters(), *self.actor_belief.parameters()], lr=cfg.lr_pi)
        self.generator = torch.Generator().manual_seed(int(seeds[0]) + 29)

    @torch.no_grad()
    def act(self, state, obs, *, deterministic, random_phase, iteration, sim):
        state = self.observe(state, obs)
        s, b = state.shape[:2]
        if random_phase:
            slates = uniform_slates((s, b, self.rec_size), self.num_items, self.generator)
        else:
            logits = self.policy(state)
            if deterministic:
                slates = logits.topk(self.rec_size, dim=-1).indices
            else:
                probs = torch.softmax(logits, -1).reshape(s * b, -1)
                slates = torch.multinomial(probs, self.rec_size, replacement=True, generator=self.generator).reshape(s, b, -1)
        return state, slates, slates

    def should_update(self, iteration, random_steps, buffer_size, batch_size):
        if self.cfg.fix_reinforce_random_phase and iteration < random_steps:
            return False
        return buffer_size >= 1  # the official agent updates from the first iteration (spec §6.2)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-member ``-sum_t G_t log alpha_t`` over clicked turns (summed over the batch's trajectories)."""
        states = self.actor_belief.encode(batch["slates"], batch["clicks"])
        log_pi = torch.log_softmax(self.policy(states), -1)  # (S, B, T, N)
        item, clicked = first_click(batch["actions"].long(), batch["step_clicks"])
        pi_i = log_pi.gather(-1, item.unsqueeze(-1)).squeeze(-1).exp()
        log_alpha = torch.log(1 - (1 - pi_i).pow(self.rec_size) + 1e-6)
        returns = discounted_returns(batch["rewards"], self.cfg.gamma)
        s = returns.shape[0]
        return -(returns * log_alpha * clicked.float()).reshape(s, -1).sum(1)

    def update(self, batch, iteration):
        loss = self.loss(batch)
        descend(self.opt, loss)
        return {"losses/pi": loss.mean().item()}
