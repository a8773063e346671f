"""TopicRec user simulator batched over users (spec §1): one ``step`` advances B users at once.

State of B users = a few tensors (user vectors, boredom flags and timers, click memories,
short-term topic). Randomness comes from counter-based streams keyed by (seed, stream, global user
index, turn), so user i and its click uniforms are identical for every policy and batching
(common random numbers, §1.12); the distribution, not the official bit stream, is reproduced.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rl4rec.slate.env import boredom, rng
from rl4rec.slate.env.click_models import examination
from rl4rec.slate.env.config import POPULATIONS, TopicRecConfig
from rl4rec.slate.env.embeddings import (
    check_embeddings,
    initial_slate,
    load_embeddings,
    main_topics,
    max_score,
    resolve_catalogue,
)

_USER_SCALE = 0.4  # std of the per-topic user sub-vectors before clipping (spec §1.3)
_DRAW_BLOCK_ELEMENTS = 1 << 22  # click uniforms drawn ahead: 16 MB, a whole episode for B <= 4,000


class TopicRecSimulator:
    """B users of the TopicRec environment stepped together.

    >>> from rl4rec.slate import variant_config
    >>> sim = TopicRecSimulator(variant_config("focused_topdown"))
    >>> obs, info = sim.reset(500, population="test")
    >>> obs, reward, done, info = sim.step(torch.full((500, 10), -1))  # short-term oracle
    """

    def __init__(
        self,
        config: TopicRecConfig | None = None,
        *,
        item_embeddings: np.ndarray | torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        cfg = config if config is not None else TopicRecConfig()
        self.config = cfg
        self.device = torch.device(device)
        self.fixes = cfg.fixes
        topics, size = cfg.num_topics, cfg.topic_size
        if item_embeddings is None:
            emb = load_embeddings(resolve_catalogue(cfg.resolved_catalogue), topics, size)
        else:
            emb = check_embeddings(item_embeddings, topics, size, source="item_embeddings")
        if emb.shape[0] != cfg.num_items:
            raise ValueError(
                f"the catalogue has {emb.shape[0]} items but num_items = {cfg.num_items}; set num_items={emb.shape[0]}"
            )
        self.num_items, self.rec_size, self.num_topics = cfg.num_items, cfg.rec_size, topics
        self.episode_length = cfg.episode_length
        self.item_embeddings = emb.to(self.device)
        self._item_embeddings_t = self.item_embeddings.T.contiguous()  # (D, N) for the oracle matmul
        self.item_topics = main_topics(emb, topics, size).to(self.device)
        self.max_score = max_score(emb)
        self.initial_slate = initial_slate(emb, topics, size, cfg.rec_size).to(self.device)
        self.examination = examination(
            cfg.resolved_click_model,
            cfg.rec_size,
            cfg.exam_gamma,
            one_based=cfg.paper_exam_exponents,
            threshold=cfg.prop_threshold,
        ).to(self.device)
        self.diversity_penalty = cfg.resolved_diversity_penalty
        dim, k = torch.arange(topics * size), torch.arange(topics).unsqueeze(1)
        self._topic_dims = ((dim >= size * k) & (dim < size * (k + 1))).float().to(self.device)
        self._pool = self._topic_dims.T.contiguous()  # (D, T): squared dims -> squared topic norms
        # official get_relevances slices [size*k, (size+1)*k): wrong dims for bored topics (§1.11)
        self._buggy_dims = ((dim >= size * k) & (dim < (size + 1) * k)).float().to(self.device)
        self.num_users = 0
        self.t = 0

    # ------------------------------------------------------------------ public API
    def reset(
        self,
        num_users: int,
        *,
        seed: int | None = None,
        user_offset: int = 0,
        user_ids: torch.Tensor | None = None,
        population: str = "train",
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Draw users ``user_offset .. user_offset+num_users-1`` (or the global indices in
        ``user_ids``, repeats allowed, e.g. the same users for several agent seeds) and show
        them the initial slate.

        ``population`` selects the user stream when ``disjoint_test_users`` is on; in faithful
        mode all populations share one stream (test users = first training users = first
        logged sessions, §1.12). ``seed`` defaults to ``config.sim_seed``.
        """
        if isinstance(num_users, bool) or not isinstance(num_users, int) or num_users < 1:
            raise ValueError(f"num_users must be a positive int, got {num_users!r}")
        if isinstance(user_offset, bool) or not isinstance(user_offset, int) or user_offset < 0:
            raise ValueError(f"user_offset must be a non-negative int, got {user_offset!r}")
        if population not in POPULATIONS:
            raise ValueError(f"population {population!r} is not one of {', '.join(POPULATIONS)}")
        if user_ids is None:
            user_ids = torch.arange(user_offset, user_offset + num_users)
        else:
            user_ids = torch.as_tensor(user_ids)
            if user_offset:
                raise ValueError("pass user_offset or user_ids, not both")
            if user_ids.shape != (num_users,) or user_ids.dtype.is_floating_point or user_ids.dtype == torch.bool:
                raise ValueError(f"user_ids must be {num_users} integer indices, got {user_ids.dtype} {tuple(user_ids.shape)}")
            if bool((user_ids < 0).any()):
                raise ValueError("user_ids must be non-negative")
        cfg, dev = self.config, self.device
        seed = cfg.sim_seed if seed is None else int(seed)
        stream = population if self.fixes.disjoint_test_users else "shared"
        self.stream = {"seed": seed, "stream": stream}
        self._user_key = rng.stream_key(seed, f"user/{stream}")
        self._click_key = rng.stream_key(seed, f"click/{stream}")
        self.num_users, self.t = num_users, 0
        self.user_ids = user_ids.to(device=dev, dtype=torch.long)
        self._click_base = rng.user_base(self._click_key, self.user_ids)
        self._click_draws = None  # (B, turns, K) click uniforms from turn _click_draws_start on
        self._click_draws_start = 0
        self.user = self._draw_users()
        self.bored = torch.zeros(num_users, self.num_topics, dtype=torch.bool, device=dev)
        self._timer = torch.full((num_users, self.num_topics), cfg.boredom_duration, device=dev)
        self._memory = boredom.empty(num_users, cfg.recent_items_maxlen, dev)
        self._clicked = torch.zeros(num_users, self.num_items, dtype=torch.bool, device=dev) if cfg.click_only_once else None

        slate = self.initial_slate.expand(num_users, -1).clone()
        topics = self.item_topics[slate]
        scores = torch.bmm(self._embed(slate), self.user.unsqueeze(2)).squeeze(2) / self.max_score  # raw user
        clicks = self._click(self._relevance(scores), topics, self._click_uniforms(0))
        self._memory = boredom.record_reset(self._memory, topics, clicks, aligned=self.fixes.boredom_alignment)
        self._mark_clicked(slate, clicks)
        # short-term topic: topic of the last clicked item, else a random topic (§1.4 step 5)
        fallback = (rng.uniforms(self._user_key, self.user_ids, 2, 1)[:, 0] * self.num_topics).long()
        last_item = slate.gather(1, self._last_clicked_slot(clicks).unsqueeze(1)).squeeze(1)
        self.short_term = torch.where(clicks.any(1), self.item_topics[last_item], fallback)
        obs = {"slate": slate, "clicks": clicks.long()}
        return obs, {"user_state": self.user.clone(), "scores": scores, "slate_topics": topics}

    def step(self, slates: torch.Tensor | np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor, bool, dict[str, Any]]:
        """Show one slate per user (B, K); -1 slots are filled by the short-term oracle.

        Returns ``obs`` {slate (after fill), clicks}, ``reward`` (B,) = clicks per user, ``done``
        (all users are in lockstep) and ``info`` {user_state after influence, scores (normalised,
        per slot), bored (flags used this turn), slate_topics}.
        """
        if self.num_users == 0:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.episode_length:
            raise RuntimeError(f"the episode ended after {self.episode_length} steps; call reset()")
        slates = self._check_slates(slates)
        self.t += 1
        return self._turn(slates, self._click_uniforms(self.t), self.t, bool((slates < 0).any()))

    def compile_turns(self) -> None:
        """Run every later turn through ``torch.compile`` (inductor: C++ kernels on CPU, Triton on
        CUDA), which fuses the turn's ~250 small ops. Eager is the reference: both give the same
        episodes up to float rounding (tested). Input checks and the click-uniform blocks stay eager."""
        self._turn = torch.compile(self._turn)  # the instance attribute shadows the method

    def _turn(self, slates: torch.Tensor, draws: torch.Tensor, t: int, fill: bool):
        """Turn ``t`` for checked ``slates`` (B, K), with click uniforms ``draws`` (B, K); ``fill``:
        some slot is -1. Pure tensor work plus the state update (what :meth:`compile_turns` compiles)."""
        cfg = self.config
        counts = boredom.topic_counts(self._memory, self.num_topics)  # A as left by turn t-1
        self.bored, self._timer = boredom.advance(
            self.bored, self._timer, counts, cfg.boredom_threshold, cfg.boredom_duration
        )
        user_eff = self._effective_user(self._topic_dims)
        if fill:
            slates = self._oracle_fill(slates, slates < 0, user_eff)
        topics = self.item_topics[slates]
        emb = self._embed(slates)
        scores = torch.bmm(emb, user_eff.unsqueeze(2)).squeeze(2) / self.max_score
        rel = self._relevance(scores)
        if self._clicked is not None:
            rel = rel.masked_fill(self._clicked.gather(1, slates), 0.0)
        clicks = self._click(rel, topics, draws)
        self._memory = boredom.record_turn(self._memory, topics, clicks, t, cfg.boredom_moving_window)
        self._mark_clicked(slates, clicks)
        self.user = self._influence(slates, clicks)
        if cfg.short_term_boost != 1.0:  # the short-term topic only acts through the boost
            self._update_short_term(slates, clicks)
        obs = {"slate": slates, "clicks": clicks.long()}
        # clones: the caller may keep or modify these while the state moves on
        info = {"user_state": self.user.clone(), "scores": scores, "bored": self.bored.clone(), "slate_topics": topics}
        return obs, clicks.sum(1).float(), t >= self.episode_length, info

    def relevances(self, user_state: torch.Tensor | None = None) -> torch.Tensor:
        """Relevance of every item, ``(B, N)`` (SlateQ's privileged access, §1.11).

        Without ``user_state``: the current users with the boredom flags of the last step; the
        faithful mode reproduces the official mask bug (bored topic k zeroes dims [2k, 3k)),
        ``fix_relevance_mask`` masks [2k, 2k+2). With ``user_state`` (B', D): raw, no mask.
        """
        if user_state is None:
            if self.num_users == 0:
                raise RuntimeError("call reset() before relevances()")
            dims = self._topic_dims if self.fixes.relevance_mask else self._buggy_dims
            user = self._effective_user(dims)
        else:
            user = torch.as_tensor(user_state, dtype=torch.float32, device=self.device)
            if user.ndim != 2 or user.shape[1] != self.item_embeddings.shape[1]:
                raise ValueError(f"user_state must be (B, {self.item_embeddings.shape[1]}), got {tuple(user.shape)}")
        return self._relevance(user @ self.item_embeddings.T / self.max_score)

    def attractiveness(self, relevance: torch.Tensor, slate_topics: torch.Tensor) -> torch.Tensor:
        """Per-slot attractiveness (B, K): the relevance, divided by ``diversity_penalty`` for
        slates where one main topic fills ``>= diversity_threshold`` slots (``>`` with
        ``fix_divpen_threshold``); duplicates count (§1.6)."""
        if self.diversity_penalty == 1.0:
            return relevance
        per_topic = torch.zeros(slate_topics.shape[0], self.num_topics, device=self.device)
        most = per_topic.scatter_add_(1, slate_topics, torch.ones_like(relevance)).amax(1)
        threshold = self.config.diversity_threshold
        crowded = most > threshold if self.fixes.divpen_threshold else most >= threshold
        return relevance / torch.where(crowded, self.diversity_penalty, 1.0).unsqueeze(1)

    def click_probs(self, attractiveness: torch.Tensor) -> torch.Tensor:
        """Per-slot click probabilities ``attr_r * exam_r`` for (..., K) attractiveness."""
        if attractiveness.shape[-1] != self.rec_size:
            raise ValueError(f"attractiveness must end with {self.rec_size} slots, got {tuple(attractiveness.shape)}")
        return attractiveness * self.examination

    @property
    def done(self) -> bool:
        return self.num_users > 0 and self.t >= self.episode_length

    # ------------------------------------------------------------------ pieces of a turn
    def _normalise(self, user: torch.Tensor) -> torch.Tensor:
        if self.config.unit_l2_users:
            return user / user.norm(dim=1, keepdim=True)
        # official: divide by the sum of per-topic L2 norms (a group-L1 norm, §1.3). Eager: a tiny
        # matmul pools the squared dims per topic (much faster than a sum over a dim of 2); compiled:
        # the sum, which fuses (the same additions, so the same floats)
        if torch.compiler.is_compiling():
            squares = user.view(user.shape[0], self.num_topics, -1).square().sum(-1)
        else:
            squares = (user * user) @ self._pool
        return user / squares.sqrt().sum(1, keepdim=True)

    def _draw_users(self) -> torch.Tensor:
        topics, size = self.num_topics, self.config.topic_size
        z = _USER_SCALE * rng.normals(self._user_key, self.user_ids, 0, topics * size)
        z = z.clamp(-1, 1).abs().view(-1, topics, size)
        weights = rng.uniforms(self._user_key, self.user_ids, 1, topics).pow(3)  # users more peaked than items
        weights = weights / weights.sum(1, keepdim=True)
        return self._normalise((weights.unsqueeze(2) * z).flatten(1))

    def _effective_user(self, dims: torch.Tensor) -> torch.Tensor:
        """User vector with bored topics' dims zeroed, then the short-term topic boosted."""
        masked = (self.bored.float() @ dims) > 0
        user = self.user.masked_fill(masked, 0.0)
        boost = self.config.short_term_boost
        if boost != 1.0:
            user = user * torch.where(dims[self.short_term] > 0, boost, 1.0)
        return user

    def _embed(self, slates: torch.Tensor) -> torch.Tensor:
        """(B, K, D) item embeddings of the slates (index_select: ~4x faster than fancy indexing)."""
        flat = self.item_embeddings.index_select(0, slates.reshape(-1))
        return flat.view(*slates.shape, -1)

    def _relevance(self, scores: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.rel_threshold is not None:
            return (scores > cfg.rel_threshold).float()
        return torch.sigmoid(cfg.env_slope * (scores - cfg.env_offset))

    def _oracle_fill(self, slates: torch.Tensor, fill: torch.Tensor, user_eff: torch.Tensor) -> torch.Tensor:
        """Put the oracle's rank-r item (top-K by u_eff . e) into every slot r holding -1 (§1.10)."""
        rows = fill.any(1)
        # compiled: every row (rows without a -1 keep their slate); eager: only the rows that need it
        every = torch.compiler.is_compiling() or bool(rows.all())
        idx = None if every else rows.nonzero().squeeze(1)
        user = user_eff if every else user_eff[idx]
        scores = user @ self._item_embeddings_t
        if self._clicked is not None:
            scores = scores.masked_fill(self._clicked if every else self._clicked[idx], 0.0)
        best = scores.topk(self.rec_size, dim=1).indices
        if every:
            return torch.where(fill, best, slates)
        slates = slates.clone()
        slates[idx] = torch.where(fill[idx], best, slates[idx])
        return slates

    def _click(self, rel: torch.Tensor, topics: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Bernoulli clicks (B, K) bool of the position-based model (§1.6), from uniforms ``draws``."""
        return draws < self.attractiveness(rel, topics) * self.examination

    def _click_uniforms(self, counter: int) -> torch.Tensor:
        """Click uniforms of turn ``counter`` (B, K). One hash call draws a block of turns (the
        values are a pure function of (user, turn, slot), so drawing ahead changes nothing) and
        saves ~30 small ops per turn."""
        offset = counter - self._click_draws_start
        if self._click_draws is None or not 0 <= offset < self._click_draws.shape[1]:
            block = max(1, min(self.episode_length + 1 - counter, _DRAW_BLOCK_ELEMENTS // (self.num_users * self.rec_size)))
            counters = torch.arange(counter, counter + block, device=self.device)
            self._click_draws = rng.uniforms_block(self._click_base, counters, self.rec_size)
            self._click_draws_start, offset = counter, 0
        return self._click_draws[:, offset]

    def _influence(self, slates: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        """``u <- normalise(omega u + (1-omega) e)`` for each clicked item in rank order (§1.8).

        The renormalisation between clicks makes the result order-dependent with no closed form,
        so this loops over click *ranks* (at most max clicks in the batch), each step over all
        users at once. Clicked slots are first moved to the front, keeping their order.
        """
        n = clicks.sum(1)
        # compiled: always K rounds (the extra ones change nothing), no data-dependent loop length
        rounds = self.rec_size if torch.compiler.is_compiling() else int(n.max())
        user = self.user
        if rounds == 0:
            return user
        order = torch.argsort((~clicks).to(torch.int8), dim=1, stable=True)
        emb = self._embed(slates.gather(1, order))  # clicked items first, in rank order
        weight = 1.0 - self.config.env_omega
        for j in range(rounds):
            moved = self._normalise(user.lerp(emb[:, j], weight))  # omega u + (1 - omega) e
            user = torch.where((n > j).unsqueeze(1), moved, user)
        return user

    def _update_short_term(self, slates: torch.Tensor, clicks: torch.Tensor) -> None:
        """If the short-term topic is bored and there was a click, switch it (§1.9).

        Official bug (kept unless ``fix_short_term_update``): the topic is looked up for the
        item whose id equals the slot index of the last click. No effect while boost = 1.0,
        so ``step`` skips it then (``short_term`` keeps its reset value).
        """
        last = self._last_clicked_slot(clicks)
        item = slates.gather(1, last.unsqueeze(1)).squeeze(1) if self.fixes.short_term_update else last
        switch = clicks.any(1) & self.bored.gather(1, self.short_term.unsqueeze(1)).squeeze(1)
        self.short_term = torch.where(switch, self.item_topics[item], self.short_term)

    def _last_clicked_slot(self, clicks: torch.Tensor) -> torch.Tensor:
        ranks = torch.arange(1, self.rec_size + 1, device=self.device)
        return (clicks.long() * ranks).argmax(1)

    def _mark_clicked(self, slates: torch.Tensor, clicks: torch.Tensor) -> None:
        if self._clicked is not None:
            rows = torch.arange(slates.shape[0], device=self.device).unsqueeze(1).expand_as(slates)
            self._clicked[rows[clicks], slates[clicks]] = True

    def _check_slates(self, slates: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(B, K) integer ids in [0, N) or -1; anything else is a ValueError (never clamped)."""
        if isinstance(slates, np.ndarray):
            if slates.dtype.kind not in "iu":
                raise ValueError(f"slates must hold integer item ids, got dtype {slates.dtype}")
            slates = torch.from_numpy(slates.astype(np.int64))
        elif isinstance(slates, torch.Tensor):
            if slates.dtype.is_floating_point or slates.dtype.is_complex or slates.dtype == torch.bool:
                raise ValueError(f"slates must hold integer item ids, got dtype {slates.dtype}")
        else:
            raise ValueError(f"slates must be a torch.Tensor or numpy array, got {type(slates).__name__}")
        expected = (self.num_users, self.rec_size)
        if tuple(slates.shape) != expected:
            raise ValueError(f"slates must have shape (num_users, rec_size) = {expected}, got {tuple(slates.shape)}")
        slates = slates.to(device=self.device, dtype=torch.long, copy=True)
        bad = (slates < -1) | (slates >= self.num_items)
        if bool(bad.any()):
            user, slot = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"item id {int(slates[user, slot])} (user {user}, slot {slot}) is out of range: "
                f"ids must be in [0, {self.num_items}) or -1 for an oracle slot"
            )
        return slates
