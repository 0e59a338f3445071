"""The RM's encoder fine-tuned on within-group preferences, not frozen (issue 21's candidate).

The pooled RM reads a frozen encoder's mean-pooled embedding. :class:`GroupPreferenceFinetuner` instead
trains the encoder's top ``layers`` transformer layers together with a linear head on the pooled output and
the trajectory statistics, with a within-group Bradley-Terry loss: for every two states of one group (the
candidates of one task id sampled together) whose values differ, ``-log sigmoid(s_better - s_worse)``. The
lower layers stay frozen, so their outputs are computed once per text (:meth:`prepare`, kept in memory as
float16) and every fold of a cross-validation trains only the top of the network from them.

Only encoders whose layers take ``(hidden_states, attention_mask)`` and return the new hidden states (BERT
and its kin, e.g. the default all-MiniLM-L6-v2) are supported; :meth:`prepare` checks that the split
forward reproduces the encoder's own output and raises ``ValueError`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :class:`GroupPreferenceFinetuner` (chosen on held-in train tasks only).

    Attributes:
        layers: top transformer layers trained (the rest frozen).
        epochs: passes over the training groups.
        lr: AdamW learning rate of the trained layers; ``head_lr`` that of the linear head.
        groups_per_step: groups in one optimiser step.
        weight_decay: AdamW weight decay (the head and the layers).
        max_length: tokens of a state's text the encoder reads.
        seed: torch seed of the head's initialisation and the group order.
    """

    layers: int = 1
    epochs: int = 3
    lr: float = 3e-5
    head_lr: float = 3e-3
    groups_per_step: int = 4
    weight_decay: float = 0.01
    max_length: int = 320
    seed: int = 0


class GroupPreferenceFinetuner:
    """Fine-tune the top of an encoder on within-group preferences and score held-out states (module docstring).

    Args:
        encoder, tokenizer: a Hugging Face encoder (``AutoModel``) and its tokenizer.
        config: :class:`FinetuneConfig`.
    """

    def __init__(self, encoder: Any, tokenizer: Any, config: FinetuneConfig | None = None):
        self.encoder, self.tokenizer = encoder, tokenizer
        self.config = config or FinetuneConfig()
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        if layers is None or not 1 <= self.config.layers <= len(layers):
            raise ValueError(f"fine-tuning needs an encoder with at least {self.config.layers} layers under "
                             f"`encoder.layer` (BERT-like); got {type(encoder).__name__}")
        self._top_init = [{k: v.detach().clone() for k, v in layer.state_dict().items()}
                          for layer in layers[-self.config.layers:]]
        self.hidden: list[Any] = []

    # ------------------------------------------------------------------ frozen part
    def _mask(self, attention: Any, hidden: Any) -> Any:
        masks = self.encoder._create_attention_masks(attention_mask=attention, encoder_attention_mask=None,
                                                     embedding_output=hidden, encoder_hidden_states=None,
                                                     cache=None, position_ids=None)
        return masks[0]

    def _top(self, hidden: Any, attention: Any) -> Any:
        mask = self._mask(attention, hidden)
        for layer in self.encoder.encoder.layer[-self.config.layers:]:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def prepare(self, texts: Sequence[str], batch_size: int = 16, progress: bool = False) -> None:
        """Run the frozen layers over every text once (its hidden states kept, trimmed to its length)."""
        import torch
        from tqdm.auto import tqdm

        self.encoder.eval()
        split = len(self.encoder.encoder.layer) - self.config.layers
        self.hidden = []
        order = range(0, len(texts), batch_size)
        with torch.no_grad():
            for start in tqdm(order, desc="encode (frozen layers)", disable=not progress):
                batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                       max_length=self.config.max_length, return_tensors="pt")
                out = self.encoder(**batch, output_hidden_states=True)
                lower = out.hidden_states[split]
                if start == 0:  # the split forward must be the encoder's own
                    again = self._top(lower, batch["attention_mask"])
                    keep = batch["attention_mask"].bool()
                    if not torch.allclose(again[keep], out.last_hidden_state[keep], atol=1e-4):
                        raise ValueError(f"{type(self.encoder).__name__}: running its top layers alone does not "
                                         "reproduce its output; this encoder cannot be fine-tuned here")
                for row, n in zip(lower, batch["attention_mask"].sum(dim=1).tolist(), strict=True):
                    self.hidden.append(row[:n].to(torch.float16).clone())

    def _batch(self, idx: Sequence[int]) -> tuple[Any, Any]:
        import torch

        longest = max(int(self.hidden[i].shape[0]) for i in idx)
        width = int(self.hidden[idx[0]].shape[1])
        hidden = torch.zeros(len(idx), longest, width)
        attention = torch.zeros(len(idx), longest, dtype=torch.long)
        for row, i in enumerate(idx):
            n = int(self.hidden[i].shape[0])
            hidden[row, :n] = self.hidden[i].float()
            attention[row, :n] = 1
        return hidden, attention

    def _pooled(self, idx: Sequence[int]) -> Any:
        hidden, attention = self._batch(idx)
        top = self._top(hidden, attention)
        weights = attention.unsqueeze(-1).to(top.dtype)
        return (top * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    # ------------------------------------------------------------------ one fold
    def fit_score(self, features: np.ndarray, values: np.ndarray, groups: Sequence[Any], train: np.ndarray,
                  score: np.ndarray, progress: bool = False) -> np.ndarray:
        """Train the top layers and head on the ``train`` rows' groups; the scores of the ``score`` rows.

        ``features``: per row the statistics the head reads beside the pooled embedding (standardised on the
        training rows). The top layers are reset to the encoder's own weights first, so folds are independent.
        """
        import torch
        from tqdm.auto import tqdm

        cfg = self.config
        if not self.hidden:
            raise RuntimeError("call prepare(texts) first")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        top = self.encoder.encoder.layer[-cfg.layers:]
        for layer, state in zip(top, self._top_init, strict=True):
            layer.load_state_dict(state)
        rows = np.flatnonzero(train)
        mean, std = features[rows].mean(axis=0), features[rows].std(axis=0) + 1e-8
        feats = torch.tensor((features - mean) / std, dtype=torch.float32)
        width = int(self.hidden[0].shape[1])
        head = torch.nn.Linear(width + feats.shape[1], 1)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        params = [p for layer in top for p in layer.parameters()]
        opt = torch.optim.AdamW([{"params": params, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
                                weight_decay=cfg.weight_decay)
        members: dict[Any, list[int]] = {}
        for i in rows:
            members.setdefault(groups[i], []).append(int(i))
        useful = [m for m in members.values() if len(m) >= 2 and np.ptp(values[m]) > 0]
        steps = cfg.epochs * max(1, -(-len(useful) // cfg.groups_per_step))
        for layer in top:
            layer.train()
        bar = tqdm(total=steps, desc="fine-tune", disable=not progress)
        for _ in range(cfg.epochs):
            order = rng.permutation(len(useful))
            for start in range(0, len(order), cfg.groups_per_step):
                chosen = [useful[k] for k in order[start:start + cfg.groups_per_step]]
                idx = [i for m in chosen for i in m]
                s = head(torch.cat([self._pooled(idx), feats[idx]], dim=1)).squeeze(-1)
                loss, pairs, at = s.new_zeros(()), 0, 0
                for m in chosen:
                    v = torch.tensor(values[m], dtype=torch.float32)
                    sm = s[at:at + len(m)]
                    at += len(m)
                    better = v[:, None] > v[None, :]
                    if better.any():
                        diff = sm[:, None] - sm[None, :]
                        loss = loss + torch.nn.functional.softplus(-diff[better]).sum()
                        pairs += int(better.sum())
                opt.zero_grad()
                (loss / max(pairs, 1)).backward()
                opt.step()
                bar.update(1)
        bar.close()
        for layer in top:
            layer.eval()
        out = np.zeros(int(np.sum(score)))
        with torch.no_grad():
            pick = np.flatnonzero(score)
            for start in range(0, len(pick), 32):
                idx = [int(i) for i in pick[start:start + 32]]
                out[start:start + len(idx)] = head(torch.cat([self._pooled(idx), feats[idx]], dim=1)).squeeze(-1).numpy()
        return out
