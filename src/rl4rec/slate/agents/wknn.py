"""SAC + Wolpertinger kNN (WkNN, spec slate_rl.md §6.1), with the official deviations as switches.

The policy emits one 20-d proto-item per slot (A = 200). Each slot's 10 nearest items (Euclidean)
are candidates; slots are filled greedily r = 0..9, scoring each candidate with the target Q-net 1
on the slate [chosen slots < r, candidate repeated in every slot >= r]. Q-nets see a slate as the
slot-major concatenation of its 10 item embeddings; the policy loss feeds the raw proto-action.

Faithful (official) behaviour: the item table is a frozen copy of the critic belief's random
N(0, 1) table; Q(s_t, a_t) in the critic loss uses the slate of the previous turn (observation t);
the proto-action is read dimension-major (slot r = entries r, r+10, ..., r+190) while the action
box is laid out slot-major. ``fixed=True`` uses the MF (or given) table, the chosen slate and one
slot-major layout, as the paper describes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rl4rec.slate.agents.base import AgentConfig
from rl4rec.slate.agents.sac import SACAgent

NEIGHBOURS = 10


class WkNNAgent(SACAgent):
    action_dtype = torch.int16  # the buffer stores the slate that was shown

    def __init__(
        self,
        seeds: Sequence[int],
        cfg: AgentConfig,
        num_items: int,
        rec_size: int,
        *,
        fixed: bool = False,
        table: torch.Tensor | None = None,
    ):
        s = len(seeds)
        # the box must exist before SACAgent builds the networks; the table is known only after
        # the critic belief exists (faithful), so start with a placeholder box and set it below
        super().__init__(seeds, cfg, None, torch.zeros(s, rec_size * 20), torch.ones(s, rec_size * 20), num_items, rec_size)
        self.fixed, self.rec_size = fixed, rec_size
        if fixed:
            if table is None:
                raise ValueError("WkNN fixed mode needs an item table (MF embeddings, spec §6.1)")
            items = torch.as_tensor(table, dtype=torch.float32).unsqueeze(0).repeat(s, 1, 1)
        else:
            items = self.critic_belief.items.weight.detach().clone()  # official: the critic's random table
        self.register_buffer("items", items)  # (S, N, D), frozen
        lo, hi = items.amin(1), items.amax(1)  # (S, D)
        # slot-major box: dims [20r, 20r+20) of slot r; the faithful proto reading is dimension-major
        self.center.copy_(((hi + lo) / 2).repeat(1, rec_size))
        self.scale.copy_(((hi - lo) / 2).repeat(1, rec_size))
        self.action_shape = (rec_size,)

    # -- proto-action -> slate ----------------------------------------------------------
    def protos(self, action: torch.Tensor) -> torch.Tensor:
        """(S, ..., K*D) -> per-slot proto-items (S, ..., K, D) in the layout of the mode."""
        d = self.items.shape[-1]
        if self.fixed:
            return action.unflatten(-1, (self.rec_size, d))
        return action.unflatten(-1, (d, self.rec_size)).transpose(-1, -2)  # official dimension-major

    def slate_embedding(self, slates: torch.Tensor) -> torch.Tensor:
        """(S, ..., K) item ids -> (S, ..., K*D) slot-major concatenation."""
        s = slates.shape[0]
        flat = slates.reshape(s, -1).long()
        emb = torch.gather(self.items, 1, flat.unsqueeze(-1).expand(-1, -1, self.items.shape[-1]))
        return emb.reshape(*slates.shape[:-1], -1)

    @torch.no_grad()
    def greedy_slates(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """kNN candidates per slot, then greedy slot filling with the target Q-net 1 (no loop over users)."""
        s = state.shape[0]
        lead = state.shape[1:-1]
        protos = self.protos(action).reshape(s, -1, self.rec_size, self.items.shape[-1])  # (S, M, K, D)
        m = protos.shape[1]
        dist = torch.cdist(protos.reshape(s, m * self.rec_size, -1), self.items)  # (S, M*K, N)
        cands = dist.topk(NEIGHBOURS, dim=-1, largest=False).indices.reshape(s, m, self.rec_size, NEIGHBOURS)
        flat_state = state.reshape(s, m, -1)
        chosen = cands[..., 0].clone()  # (S, M, K)
        for r in range(self.rec_size):  # slots are filled in order: each depends on the previous
            trial = chosen.unsqueeze(2).repeat(1, 1, NEIGHBOURS, 1)  # (S, M, C, K)
            trial[..., r:] = cands[:, :, r].unsqueeze(-1)  # candidate repeated in every slot >= r
            inp = torch.cat([flat_state.unsqueeze(2).expand(-1, -1, NEIGHBOURS, -1), self.slate_embedding(trial)], -1)
            best = self.q1_target(inp).squeeze(-1).argmax(-1)  # (S, M)
            chosen[..., r] = cands[:, :, r].gather(-1, best.unsqueeze(-1)).squeeze(-1)
        return chosen.reshape(s, *lead, self.rec_size)

    # -- acting --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, state, obs, *, deterministic, random_phase, iteration, sim):
        state = self.observe(state, obs)
        s, b = state.shape[:2]
        if random_phase:  # ranker-free random phase: i.i.d. uniform item ids (spec §7.1)
            slates = torch.randint(0, self.num_items, (s, b, self.rec_size), generator=self.generator)
        else:
            action, _ = self.sample(state, deterministic=deterministic)
            slates = self.greedy_slates(state, action)
        return state, slates, slates

    # -- learning ------------------------------------------------------------------------
    def q_loss(self, batch, s_crit, s_act, alpha):
        shown = batch["actions"].long() if self.fixed else batch["slates"]  # official: previous turn's slate
        batch = {**batch, "actions": self.slate_embedding(shown)}
        return super().q_loss(batch, s_crit, s_act, alpha)

    def next_action(self, next_act: torch.Tensor, next_crit: torch.Tensor):
        """Next slate embedding from a sampled proto-action (kNN + greedy), and its log pi."""
        proto, logp = self.sample(next_act)
        return self.slate_embedding(self.greedy_slates(next_crit, proto)), logp
