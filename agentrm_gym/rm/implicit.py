"""The implicit reward model (PRIME-style): the log-ratio of a policy and a frozen reference LM.

For a state with steps ``a_1 .. a_T``, step ``t``'s implicit process reward is::

    r_t = beta * sum_{tokens y of a_t} [log pi(y | prefix) - log pi_ref(y | prefix)]

where the prefix is the RM text up to that token (header, earlier turns, this step's thought). The score
of a state is ``sum_t r_t`` (``aggregate="sum"``, the default: the implicit outcome reward of the trajectory
so far, which PRIME trains against outcome labels) or the last step's ``r_T`` (``aggregate="last"``). A state
without steps scores 0. An input ends at its last action token (the log-probs of a causal LM do not depend on
what follows, so a long last observation never pushes the actions out); longer than ``max_length`` tokens, it
keeps its end.

Training (:func:`train_implicit_rm`) fits the policy on outcome labels ``y`` in [0, 1]: cross-entropy
``BCE(sigmoid(score), y)`` (``loss="ce"``, PRIME's), ``MSE(score, y)``, or, given each sample's group (the
candidates compared with each other), the within-group Bradley-Terry loss ``-log sigmoid(score_i - score_j)``
over the group's pairs with ``y_i > y_j`` (``loss="bt"``: DPO's loss on the implicit reward, which learns only
the order within a group, what Best-of-N asks of it, not the outcome's level across tasks). The reference
stays frozen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.backbones import ensure_pad_token, require_torch
from agentrm_gym.rm.base import RewardModel
from agentrm_gym.rm.format import HISTORY_SEPARATOR, RMFormat
from agentrm_gym.rm.pairwise import bradley_terry_loss
from agentrm_gym.rm.trainer import ImplicitConfig, fit, split_indices
from agentrm_gym.trajectory import AgentState


class ImplicitRewardModel(RewardModel):
    """``beta * log pi/pi_ref`` over action tokens from two causal LMs sharing a tokenizer.

    Args:
        policy: the causal LM being trained.
        reference: the frozen reference causal LM (same tokenizer).
        tokenizer: a fast tokenizer (offsets are needed to find the action tokens).
        beta: the log-ratio scale (AgentRM/PRIME: 0.05).
        aggregate: ``"sum"`` of the per-step rewards or the ``"last"`` step's.
    """

    kind = "implicit"

    def __init__(
        self, policy: Any, reference: Any, tokenizer: Any, fmt: RMFormat | None = None, beta: float = 0.05,
        aggregate: str = "sum", max_length: int = 512, batch_size: int = 8, backbone: str = "",
        meta: dict[str, Any] | None = None, cache_size: int = 100_000,
    ):
        super().__init__(fmt=fmt, batch_size=batch_size, cache_size=cache_size)
        if aggregate not in ("sum", "last"):
            raise ValueError(f"aggregate must be 'sum' or 'last', got {aggregate!r}")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the implicit RM needs a fast tokenizer (offset mappings locate the action tokens)")
        ensure_pad_token(tokenizer)
        self.policy = policy.eval()
        self.reference = reference.eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.beta = beta
        self.aggregate = aggregate
        self.max_length = max_length
        self.backbone = backbone
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ computation
    def _encode(self, states: Sequence[AgentState]) -> tuple[Any, Any, Any]:
        """Token ids, attention mask and a (batch, tokens) step index (-1: not an action token)."""
        torch = require_torch()
        rows, steps = [], []
        for s in states:
            header = self.fmt.header(s) + HISTORY_SEPARATOR
            history, spans = self.fmt.history_with_spans(s)
            enc = self.tokenizer(header + history, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = enc["input_ids"], enc["offset_mapping"]
            step_of = []
            for a, b in offsets:
                idx = -1
                for t, (lo, hi) in enumerate(spans):
                    if a < hi + len(header) and b > lo + len(header) and b > a:
                        idx = t
                        break
                step_of.append(idx)
            # a causal LM's log-probs of the action tokens do not depend on the tokens after them: drop the
            # last observation, so that a long one never pushes every action out of the window
            last = max((j for j, t in enumerate(step_of) if t >= 0), default=len(ids) - 1)
            ids, step_of = ids[: last + 1], step_of[: last + 1]
            if len(ids) > self.max_length:
                ids, step_of = ids[-self.max_length :], step_of[-self.max_length :]
            rows.append(ids)
            steps.append(step_of)
        width = max(max(len(r) for r in rows), 1)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        step_idx = torch.full((len(rows), width), -1, dtype=torch.long)
        for i, (r, st) in enumerate(zip(rows, steps, strict=True)):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
            step_idx[i, : len(st)] = torch.tensor(st, dtype=torch.long)
        return ids, mask, step_idx

    @staticmethod
    def _token_logprobs(model: Any, ids: Any, mask: Any) -> Any:
        torch = require_torch()
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (batch, tokens - 1)

    def step_reward_tensor(self, policy: Any, states: Sequence[AgentState]) -> tuple[Any, list[int]]:
        """Per-step implicit rewards ``(batch, max_steps)`` (differentiable in ``policy``) and step counts."""
        torch = require_torch()
        ids, mask, step_idx = self._encode(states)
        lp = self._token_logprobs(policy, ids, mask)
        with torch.no_grad():
            lp_ref = self._token_logprobs(self.reference, ids, mask)
        ratio = (lp - lp_ref) * mask[:, 1:]
        target_steps = step_idx[:, 1:]  # token j+1 is predicted at position j
        n_steps = [len(s.steps) for s in states]
        width = max(max(n_steps), 1)
        rewards = torch.zeros((len(states), width), dtype=ratio.dtype)
        valid = target_steps >= 0
        rewards = rewards.index_put(
            (torch.nonzero(valid)[:, 0], target_steps[valid]), ratio[valid], accumulate=True
        )
        return self.beta * rewards, n_steps

    def aggregate_rewards(self, rewards: Any, n_steps: list[int]) -> Any:
        torch = require_torch()
        if self.aggregate == "sum":
            return rewards.sum(dim=1)
        last = torch.tensor([max(n - 1, 0) for n in n_steps])
        out = rewards.gather(1, last.unsqueeze(1)).squeeze(1)
        return out * torch.tensor([1.0 if n else 0.0 for n in n_steps], dtype=out.dtype)

    def forward_states(self, policy: Any, states: Sequence[AgentState]) -> Any:
        rewards, n_steps = self.step_reward_tensor(policy, states)
        return self.aggregate_rewards(rewards, n_steps)

    def step_rewards(self, state: AgentState) -> np.ndarray:
        """The per-step implicit process rewards ``r_1 .. r_T`` of one state (uncached)."""
        torch = require_torch()
        with torch.inference_mode():
            rewards, n = self.step_reward_tensor(self.policy, [state])
        return rewards[0, : n[0]].numpy().astype(np.float64)

    def _score_states(self, states: list[AgentState]) -> np.ndarray:
        torch = require_torch()
        self.stats.forward_calls += 1
        with torch.inference_mode():
            return self.forward_states(self.policy, states).numpy().astype(np.float64)

    # ------------------------------------------------------------------ persistence
    def card(self) -> dict[str, Any]:
        return {**super().card(), "backbone": self.backbone, "beta": self.beta, "aggregate": self.aggregate,
                "max_length": self.max_length, **self.meta}

    def save(self, path: str | Path) -> Path:
        """``policy/`` and ``reference/`` HF directories (tokenizer in both) plus the card."""
        from agentrm_gym.rm.card import write_card

        path = Path(path)
        for sub, model in (("policy", self.policy), ("reference", self.reference)):
            model.save_pretrained(path / sub)
            self.tokenizer.save_pretrained(path / sub)
        write_card(path, self.card())
        return path

    @classmethod
    def load(cls, path: str | Path, card: dict[str, Any], fmt: RMFormat, meta: dict[str, Any],
             **overrides: Any) -> ImplicitRewardModel:
        """Rebuild from a directory written by :meth:`save` (``load_reward_model`` calls this)."""
        from agentrm_gym.rm.card import load_hf, load_tokenizer, require_hf

        require_hf()
        from transformers import AutoModelForCausalLM

        path = Path(path)
        policy = load_hf(path / "policy", AutoModelForCausalLM)
        reference = load_hf(path / "reference", AutoModelForCausalLM)
        tok = load_tokenizer(path / "policy")
        ensure_pad_token(tok)
        kwargs = {"beta": card.get("beta", 0.05), "aggregate": card.get("aggregate", "sum"),
                  "max_length": card.get("max_length", 512), "backbone": card.get("backbone", ""), "meta": meta}
        return cls(policy, reference, tok, fmt, **{**kwargs, **overrides})


def train_implicit_rm(
    samples: Iterable[tuple[AgentState, float]],
    policy: Any,
    reference: Any,
    tokenizer: Any,
    config: ImplicitConfig | None = None,
    *,
    groups: Sequence[Any] | None = None,
    out_dir: str | Path = "runs/implicit_rm",
    fmt: RMFormat | None = None,
    backbone: str = "",
    log_dir: str | Path | None = None,
    **overrides: Any,
) -> ImplicitRewardModel:
    """Fit the policy of an implicit RM on outcome labels in [0, 1] (``loss`` ``"ce"``, ``"mse"`` or ``"bt"``).

    The config is an :class:`ImplicitConfig` (``loss``, ``beta``, ``aggregate`` besides the
    :class:`TrainConfig` fields); ``overrides`` change single fields. The reference stays frozen.
    ``groups`` (one key per sample) is needed by ``loss="bt"``: its items are then the groups holding two
    labels or more, ``batch_size`` of them a step, split into train and validation by group.
    TensorBoard (in ``log_dir``, default ``out_dir``): ``losses/rm_<loss>``, ``rm/val_loss``, and
    ``rm/val_spearman`` (``ce``, ``mse``) or ``rm/val_pairwise_accuracy`` (``bt``). Saves the RM (policy,
    reference, card) to ``out_dir``.
    """
    torch = require_torch()
    from agentrm_gym.rm.metrics import spearman

    cfg = ImplicitConfig.build(config, **overrides)
    loss = cfg.loss
    if loss not in ("ce", "mse", "bt"):
        raise ValueError(f"loss must be 'ce', 'mse' or 'bt', got {loss!r}")
    if not 0.0 <= cfg.label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {cfg.label_smoothing}")
    data = [(s, float(y)) for s, y in samples]
    if len(data) < 2:
        raise ValueError(f"train_implicit_rm needs at least 2 samples, got {len(data)}")
    rm = ImplicitRewardModel(policy, reference, tokenizer, fmt, beta=cfg.beta, aggregate=cfg.aggregate,
                             max_length=cfg.max_length, backbone=backbone)
    labels = np.array([y for _, y in data], dtype=np.float32)
    if loss == "bt":
        if groups is None:
            raise ValueError("loss='bt' ranks within groups: pass groups=, one key per sample")
        items = ranked_groups(groups, labels)
        if len(items) < 2:
            raise ValueError(f"loss='bt' needs 2 groups or more with different labels, got {len(items)}")
    else:
        items = [[i] for i in range(len(data))]
    train_idx, val_idx = split_indices(len(items), cfg.val_fraction, cfg.seed)

    def objective(score: Any, rows: list[int], members: list[list[int]]) -> Any:
        y = torch.tensor(labels[rows])
        if loss == "ce":
            return torch.nn.functional.binary_cross_entropy_with_logits(score, y)
        if loss == "mse":
            return torch.nn.functional.mse_loss(score, y)
        hi, lo = _ordered_pairs(y, members)
        return bradley_terry_loss(score[hi], score[lo], cfg.margin * (y[hi] - y[lo]), cfg.label_smoothing)

    def scored(model: Any, chosen: Sequence[int]) -> tuple[Any, list[int], list[list[int]]]:
        rows, members = [], []
        for k in chosen:
            members.append(list(range(len(rows), len(rows) + len(items[int(k)]))))
            rows.extend(items[int(k)])
        return rm.forward_states(model, [data[i][0] for i in rows]), rows, members

    def batch_loss(model: Any, idx: Sequence[int]) -> Any:
        score, rows, members = scored(model, [int(train_idx[i]) for i in idx])
        return objective(score, rows, members)

    def validate(model: Any) -> dict[str, float]:
        scores, rows, members = [], [], []
        chunk = 4 if loss == "bt" else 16  # groups or states a forward pass
        with torch.inference_mode():
            for start in range(0, len(val_idx), chunk):
                s, r, m = scored(model, [int(i) for i in val_idx[start : start + chunk]])
                members.extend([[len(rows) + j for j in g] for g in m])
                scores.append(s)
                rows.extend(r)
        s = torch.cat(scores)
        out = {"loss": float(objective(s, rows, members))}
        if loss == "bt":
            hi, lo = _ordered_pairs(torch.tensor(labels[rows]), members)
            d = s[hi] - s[lo]
            out["pairwise_accuracy"] = float(((d > 0).float() + 0.5 * (d == 0).float()).mean())
        else:
            out["spearman"] = spearman(s.numpy(), labels[rows])
        return out

    rm.policy, summary = fit(
        policy, tokenizer, len(train_idx), batch_loss, validate if len(val_idx) else None, out_dir, cfg,
        f"losses/rm_{loss}", default_lr=cfg.lr if cfg.lr is not None else 1e-4, desc="train implicit RM", log_dir=log_dir,
    )
    rm.policy.eval()
    rm.meta = {
        "objective": loss,
        "training": {"samples": len(data), "train": len(train_idx), "val": len(val_idx),
                     **({"groups": len(items)} if loss == "bt" else {}),
                     "tasks": sorted({s.task for s, _ in data})},
        "metrics": {k: summary[k] for k in ("best_val_loss", "steps", "epochs_run", "train_seconds")},
    }
    rm.save(out_dir)
    return rm


def ranked_groups(groups: Sequence[Any], labels: Sequence[float]) -> list[list[int]]:
    """The sample indices of each group holding two labels or more (the groups ``loss="bt"`` learns from), in
    order of first appearance."""
    if len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} keys for {len(labels)} samples")
    index: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    return [m for m in index.values() if len({float(labels[i]) for i in m}) >= 2]


def _ordered_pairs(y: Any, members: list[list[int]]) -> tuple[Any, Any]:
    """Index tensors ``(hi, lo)`` of every pair of a group with ``y[hi] > y[lo]`` (positions in the batch)."""
    torch = require_torch()
    pairs = [(a, b) for m in members for a in m for b in m if y[a] > y[b]]
    hi, lo = zip(*pairs, strict=True) if pairs else ((), ())
    return torch.tensor(hi, dtype=torch.long), torch.tensor(lo, dtype=torch.long)
