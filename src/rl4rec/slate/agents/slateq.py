"""SlateQ, variant QL-TT-TS (spec slate_rl.md §6.3): item-wise Q-learning with the true click model.

Item-Q network: belief state -> 256 -> N. Acting: epsilon-greedy, otherwise the top-10 items by
``rel_true(i) * Q(s, i)`` with the simulator's privileged relevances. Update on turns with a
click (i = item at the smallest clicked slot):
``y = 1 + gamma (1 - done) sum_{j in A'} P(j | s', A') Qbar(s', j)``, A' = top-10 of rel(s') Qbar(s', .),
``P = attr_j * exam_slot(j)`` with attr divided by the diversity penalty when the DivPen condition
holds — batch-wide in the official code (faithful), per slate with ``fix_slateq_divpen``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rl4rec.slate.agents.base import AgentConfig, SlateAgent, first_click, uniform_slates
from rl4rec.slate.belief import BeliefEncoder
from rl4rec.slate.nets import EnsembleMLP, descend, polyak


class SlateQAgent(SlateAgent):
    OPTIMIZERS = ("opt",)
    BELIEF = "critic_belief"

    action_dtype = torch.int16
    needs_users = True

    def __init__(self, seeds: Sequence[int], cfg: AgentConfig, sim, num_items: int, rec_size: int):
        super().__init__()
        self.cfg, self.sim, self.num_items, self.rec_size = cfg, sim, num_items, rec_size
        self.action_shape = (rec_size,)
        self.critic_belief = BeliefEncoder(seeds, num_items, rec_size, cfg.belief_item_dim, cfg.state_dim, "critic")
        self.q = EnsembleMLP(seeds, cfg.state_dim, cfg.hidden, num_items, "slateq/q")
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.Adam([*self.q.parameters(), *self.critic_belief.parameters()], lr=cfg.lr_q)
        self.generator = torch.Generator().manual_seed(int(seeds[0]) + 31)

    def epsilon(self, iteration: int) -> float:
        return 0.01 + 0.99 * math.exp(-iteration / self.cfg.slateq_eps_decay)

    @torch.no_grad()
    def act(self, state, obs, *, deterministic, random_phase, iteration, sim):
        state = self.observe(state, obs)
        s, b = state.shape[:2]
        rel = sim.relevances().reshape(s, b, -1)  # privileged: the simulator's current relevances
        greedy = (rel * self.q(state)).topk(self.rec_size, dim=-1).indices
        if random_phase:
            return state, uniform_slates((s, b, self.rec_size), self.num_items, self.generator), greedy
        if deterministic:
            return state, greedy, greedy
        explore = torch.rand(s, b, 1, generator=self.generator) < self.epsilon(iteration)
        random = uniform_slates((s, b, self.rec_size), self.num_items, self.generator)
        slates = torch.where(explore, random, greedy)
        return state, slates, slates

    def target(self, next_states: torch.Tensor, next_users: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """``y`` for every turn (S, B, T) from next belief states and the raw next user vectors."""
        sim = self.sim
        q_bar = self.q_target(next_states)  # (S, B, T, N)
        rel = sim.relevances(user_state=next_users.reshape(-1, next_users.shape[-1])).reshape(q_bar.shape)
        top = (rel * q_bar).topk(self.rec_size, dim=-1).indices  # A' (S, B, T, K)
        attr = rel.gather(-1, top)
        topics = sim.item_topics[top]
        counts = F.one_hot(topics, sim.num_topics).sum(-2)  # per next slate: items per main topic
        if self.cfg.fix_slateq_divpen:
            penalised = counts.amax(-1, keepdim=True) >= sim.config.diversity_threshold
        else:  # official: one condition for the whole batch of next slates (essentially always on)
            penalised = (counts.reshape(-1, sim.num_topics).sum(0).amax() >= sim.config.diversity_threshold).expand(attr.shape[:-1]).unsqueeze(-1)
        attr = torch.where(penalised, attr / sim.diversity_penalty, attr)
        prob = attr * sim.examination
        return 1.0 + self.cfg.gamma * (1 - done) * (prob * q_bar.gather(-1, top)).sum(-1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = self.critic_belief.encode(batch["slates"], batch["clicks"])
        next_states = torch.cat([states[:, :, 1:], torch.zeros_like(states[:, :, :1])], 2).detach()
        done = torch.zeros_like(batch["rewards"])
        done[..., -1] = 1.0
        with torch.no_grad():
            y = self.target(next_states, batch["users"], done)
        item, clicked = first_click(batch["actions"].long(), batch["step_clicks"])
        q_i = self.q.select(states, item)  # Q(s, i) of the clicked item only
        w = clicked.float()
        s = w.shape[0]
        return ((q_i - y).pow(2) * w).reshape(s, -1).sum(1) / w.reshape(s, -1).sum(1).clamp(min=1)

    def update(self, batch, iteration):
        loss = self.loss(batch)
        descend(self.opt, loss)
        polyak(self.q_target, self.q, self.cfg.tau)
        return {"losses/q": loss.mean().item(), "train/epsilon": self.epsilon(iteration)}
