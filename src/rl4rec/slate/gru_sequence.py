"""The GRU recurrence over a whole sequence as one autograd node, with a hand-written BPTT.

Under plain autograd an unrolled 100-step GRU records ~12 nodes per step and its backward
accumulates the recurrent weight gradient 100 times, one tiny op at a time; that was half of a
one-seed SAC update. Here the forward runs without a graph, saves the gates, and the backward
walks the steps once with a few fused ops each, then forms the weight gradients with one batched
matmul over all steps. ``torch.autograd.gradcheck`` checks it against autograd (tests).

Layout (members S, batch B, steps T, hidden H): ``gi`` (S, B, T, 3H) are the input-side gate
pre-activations (``x W_ih + b_ih``, differentiated by ordinary autograd outside this node), gates
in PyTorch's order r, z, n:

    gh = h W_hh + b_hh;  r = σ(i_r + h_r);  z = σ(i_z + h_z);  n = tanh(i_n + r h_n)
    h' = (1 - z) n + z h
"""

from __future__ import annotations

import torch


class GRUSequence(torch.autograd.Function):
    # Buffers are time-major (T, S, B, .) so that every per-step op reads and writes contiguous
    # memory; the (S, B, T, .) interface is permuted once on the way in and out.

    @staticmethod
    def forward(gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor):  # type: ignore[override]
        gi_t = gi.permute(2, 0, 1, 3).contiguous()  # (T, S, B, 3H)
        t, hid = gi_t.shape[0], gi_t.shape[-1] // 3
        gh = torch.empty_like(gi_t)  # h W_hh + b_hh per step (its n part is needed for dr)
        rz = gi_t.new_empty(*gi_t.shape[:-1], 2 * hid)
        n = gi_t.new_empty(*gi_t.shape[:-1], hid)
        hs = torch.empty_like(n)
        h = h0
        for step in range(t):  # the recurrence: members, batch and gates are batched
            g = torch.baddbmm(b_hh, h, w_hh, out=gh[step])
            torch.add(gi_t[step, ..., : 2 * hid], g[..., : 2 * hid], out=rz[step]).sigmoid_()
            pre_n = rz[step, ..., :hid] * g[..., 2 * hid :]
            torch.tanh(pre_n.add_(gi_t[step, ..., 2 * hid :]), out=n[step])
            h = torch.lerp(n[step], h, rz[step, ..., hid:], out=hs[step])  # (1 - z) n + z h
        return hs.permute(1, 2, 0, 3), rz, n, gh

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, h0, w_hh, _ = inputs
        hs, rz, n, gh = output
        ctx.save_for_backward(h0, w_hh, hs, rz, n, gh)
        ctx.mark_non_differentiable(rz, n, gh)

    @staticmethod
    def backward(ctx, d_hs: torch.Tensor, *_unused):  # type: ignore[override]
        h0, w_hh, hs, rz, n, gh = ctx.saved_tensors
        hs = hs.permute(2, 0, 1, 3)  # back to the time-major buffer (a view)
        d_out = d_hs.permute(2, 0, 1, 3).contiguous()
        t, s, b, hid = hs.shape
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], dim=0)
        r, z = rz[..., :hid], rz[..., hid:]
        # step-independent factors of the chain rule, for all steps at once
        dn_pre_dh = (1 - z) * (1 - n * n)  # d pre-activation of n / d h'
        dz_pre_dh = (h_prev - n) * z * (1 - z)  # d pre-activation of z / d h'
        dr_pre_dn = gh[..., 2 * hid :] * r * (1 - r)  # d pre-activation of r / d pre-activation of n
        d_gh = torch.empty_like(gh)  # gradient of gh = h W_hh + b_hh per step
        d_n_pre = torch.empty_like(n)  # gradient of the n pre-activation (= d i_n)
        w_hh_t = w_hh.transpose(1, 2)
        d_h = torch.zeros_like(h0)  # gradient flowing into h from later steps
        for step in range(t - 1, -1, -1):
            d_h = d_h + d_out[step]
            dn = torch.mul(d_h, dn_pre_dh[step], out=d_n_pre[step])
            torch.mul(dn, dr_pre_dn[step], out=d_gh[step, ..., :hid])
            torch.mul(d_h, dz_pre_dh[step], out=d_gh[step, ..., hid : 2 * hid])
            torch.mul(dn, r[step], out=d_gh[step, ..., 2 * hid :])
            d_h = torch.baddbmm(d_h * z[step], d_gh[step], w_hh_t)
        d_gi = torch.cat([d_gh[..., : 2 * hid], d_n_pre], dim=-1).permute(1, 2, 0, 3)
        # weight gradients: one matmul over all steps and batch rows per member
        flat_h = h_prev.permute(1, 0, 2, 3).reshape(s, t * b, hid)
        flat_d = d_gh.permute(1, 0, 2, 3).reshape(s, t * b, 3 * hid)
        d_w_hh = torch.bmm(flat_h.transpose(1, 2), flat_d)
        d_b_hh = flat_d.sum(1, keepdim=True)
        return d_gi, d_h, d_w_hh, d_b_hh


def gru_sequence(gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """Hidden states (S, B, T, H) of the GRU from input gate pre-activations ``gi`` (S, B, T, 3H),
    initial state ``h0`` (S, B, H), recurrent weights ``w_hh`` (S, H, 3H) and bias ``b_hh`` (S, 1, 3H)."""
    return GRUSequence.apply(gi, h0, w_hh, b_hh)[0]
