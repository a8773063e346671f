"""Baselines: SASRec save/load and batched scoring, training runs (resume), and an "it learns" check."""

from __future__ import annotations

import json

import pytest
import torch

from rl4rec.cli import main
from rl4rec.config import apply_overrides
from rl4rec.genrec.baselines import GRU4Rec, Popularity, SASRec, load_model
from rl4rec.genrec.baselines.train import BaselineConfig, train_baseline

FAST = ["threads=1", "progress=false", "tracking.backends=[]"]


def test_sasrec_save_load_round_trip_and_batched_scores(tmp_path):
    torch.manual_seed(0)
    model = SASRec(30, hidden=16, max_len=5, num_blocks=2, num_heads=2, dropout=0.2)
    for p in model.parameters():  # move away from the init so the check is not trivial
        p.data.add_(0.1 * torch.randn_like(p))
    histories = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10, 11]]
    items = torch.tensor([[0, 1], [2, 3], [29, 4]])
    before = model.score(histories, items)
    assert before.shape == (3, 2) and model.training  # score() restores the training flag
    loaded = load_model(model.save(tmp_path / "sasrec.pt"))
    assert isinstance(loaded, SASRec) and loaded.config() == model.config()
    torch.testing.assert_close(loaded.score(histories, items), before)
    torch.testing.assert_close(loaded.score(histories, items[:, 0]), before[:, 0])
    # a history's scores do not depend on the other rows or on the padding (causal + key mask)
    torch.testing.assert_close(loaded.logits([[4]])[0], loaded.logits(histories)[1])
    # only the last max_len items count
    torch.testing.assert_close(loaded.logits([[0, 0, 7, 8, 9, 10, 11]]), loaded.logits([[7, 8, 9, 10, 11]]))
    with pytest.raises(ValueError, match="at least one item"):
        loaded.score([[]], [1])
    with pytest.raises(ValueError, match=r"item ids must lie in \[0, 30\)"):
        loaded.score([[1]], [30])


def test_gru4rec_and_popularity_round_trip(tmp_path):
    gru = GRU4Rec(12, hidden=8)
    torch.testing.assert_close(load_model(gru.save(tmp_path / "g.pt")).logits([[1, 2]]), gru.eval().logits([[1, 2]]))
    gru.eval()
    torch.testing.assert_close(gru.logits([[3]])[0], gru.logits([[1, 2, 5], [3]])[1])
    pop = Popularity(4, counts=[3, 0, 5, 1])
    assert load_model(pop.save(tmp_path / "p.pt")).score([[1], [2, 3]], [[0, 2], [1, 3]]).tolist() == [[3.0, 5.0], [0.0, 1.0]]


def test_train_baseline_command_writes_test_results(tmp_path, synthetic_dir, capsys):
    argv = ["genrec", "train-baseline", "--model", "pop", "--dataset", str(synthetic_dir), f"runs_dir={tmp_path}", *FAST]
    assert main(argv) == 0
    assert "pop on Synthetic" in capsys.readouterr().out
    run_dir = tmp_path / "genrec-baselines" / "pop-Synthetic_seed0"
    res = json.loads((run_dir / "test_results.json").read_text())
    assert res["train_recipe"] == "file" and res["rows"]["test"] == 281
    assert set(res["test"]) >= {"hr@1", "hr@10", "ndcg@10", "mrr@10"}
    assert sum(g["size"] for g in res["test_popularity_groups"].values()) == 281
    assert isinstance(load_model(run_dir), Popularity)
    assert main(["genrec", "train-baseline", "--model", "sasrec", f"runs_dir={tmp_path}", "hiden=3"]) == 2  # typo


def test_resume_continues_identically(tmp_path, synthetic_dir):
    base = ["model=gru4rec", f"dataset={synthetic_dir}", f"runs_dir={tmp_path}", "patience=0", "hidden=16", *FAST]
    straight = train_baseline(apply_overrides(BaselineConfig, {}, [*base, "epochs=4", "run_name=straight"]))
    train_baseline(apply_overrides(BaselineConfig, {}, [*base, "epochs=2", "run_name=resumed"]))
    resumed = train_baseline(apply_overrides(BaselineConfig, {}, [*base, "epochs=4", "run_name=resumed", "resume=true"]))
    assert resumed["epochs_run"] == 4
    assert resumed["test"] == straight["test"] and resumed["valid"] == straight["valid"]


def test_sasrec_learns_the_synthetic_rule_and_beats_popularity(tmp_path, synthetic_dir):
    """Synthetic data: next = successor(current) with prob. 0.9, so HR@1 can reach ~0.9; popularity ~1/50."""
    common = [f"dataset={synthetic_dir}", f"runs_dir={tmp_path}", *FAST]
    pop = train_baseline(apply_overrides(BaselineConfig, {}, ["model=pop", *common]))
    sas = train_baseline(apply_overrides(BaselineConfig, {}, ["model=sasrec", "epochs=15", "lr=5e-3", "dropout=0.1", *common]))
    assert pop["test"]["hr@1"] < 0.1
    assert sas["test"]["hr@1"] > 0.6 and sas["test"]["ndcg@10"] > pop["test"]["ndcg@10"] + 0.4
    scorer = load_model(sas["run_dir"])  # the CF reward model: best weights from the run directory
    ex = [e for e in load_synthetic_test(synthetic_dir)][:64]
    scores = scorer.score([e.history for e in ex], [[e.target_item_id, (e.target_item_id + 1) % 50] for e in ex])
    assert (scores[:, 0] > scores[:, 1]).float().mean() > 0.6


def load_synthetic_test(folder):
    from rl4rec.genrec.data import load_dataset

    return load_dataset(folder).test


def test_sasrec_attention_is_scaled_by_the_head_size():
    """With 2 heads and no padding, a block's attention equals torch's causal scaled dot-product
    attention (scale 1/sqrt(d / heads)); at sqrt(d) it would not."""
    import torch.nn.functional as F

    from rl4rec.genrec.baselines.models import _Block

    torch.manual_seed(0)
    block = _Block(8, 2, 0.0).eval()
    x, mask = torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool)
    q_in = block.ln1(x)
    heads = [t.view(3, 5, 2, 4).transpose(1, 2) for t in (block.q(q_in), block.k(x), block.v(x))]
    att = F.scaled_dot_product_attention(*heads, is_causal=True).transpose(1, 2).reshape(3, 5, 8)
    y = block.ln2(q_in + att)
    want = block.ln_ffn(y + block.w2(torch.relu(block.w1(y))))
    with torch.no_grad():
        torch.testing.assert_close(block(x, mask), want)
