"""LLM-as-judge: a causal LM asked whether the trajectory makes progress toward the goal.

Pointwise (``score``): the prompt is the RM text followed by :data:`POINTWISE_QUESTION`; the score is
``P(Yes) / (P(Yes) + P(No))`` from the next-token distribution, i.e. ``sigmoid(logit_Yes - logit_No)``.
Listwise (``rank`` / ``best_of_n``): all candidates in one prompt, numbered, followed by
:data:`LISTWISE_QUESTION`; the distribution over the numbers' tokens ranks them (up to 9 candidates).
No training: pass any instruction-following causal LM (a tiny one from a config in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.backbones import encode_rm_inputs, ensure_pad_token, require_torch
from agentrm_gym.rm.base import RewardModel
from agentrm_gym.rm.format import RMFormat, split_rm_text
from agentrm_gym.trajectory import AgentState

POINTWISE_QUESTION = (
    "\n\nQuestion: Is this trajectory making progress toward completing the task? Answer Yes or No.\nAnswer:"
)
LISTWISE_QUESTION = (
    "\n\nQuestion: Which candidate trajectory makes the most progress toward completing the task? "
    "Answer with its number.\nAnswer: Candidate"
)
MAX_LISTWISE = 9


def first_token_id(tokenizer: Any, word: str) -> int:
    """The first token of ``word`` as it follows a space (how it appears after "Answer:")."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"the tokenizer maps {word!r} to no tokens")
    return int(ids[0])


class JudgeRewardModel(RewardModel):
    """P("Yes") of a causal LM asked whether a trajectory makes progress (pointwise), plus listwise ranking.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer.
        max_length: prompt tokens (header kept, history truncated from the left, question kept).
    """

    kind = "judge"

    def __init__(
        self, model: Any, tokenizer: Any, fmt: RMFormat | None = None, max_length: int = 512, batch_size: int = 8,
        backbone: str = "", meta: dict[str, Any] | None = None, cache_size: int = 100_000,
    ):
        super().__init__(fmt=fmt, batch_size=batch_size, cache_size=cache_size)
        ensure_pad_token(tokenizer)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.backbone = backbone
        self.meta = dict(meta or {})
        self.yes_id = first_token_id(tokenizer, "Yes")
        self.no_id = first_token_id(tokenizer, "No")
        if self.yes_id == self.no_id:
            raise ValueError("the tokenizer gives 'Yes' and 'No' the same first token")

    def _next_token_logits(self, parts: Sequence[tuple[str, str]]) -> Any:
        torch = require_torch()
        self.stats.forward_calls += 1
        enc = encode_rm_inputs(self.tokenizer, parts, self.max_length, header_share=0.6)
        with torch.inference_mode():
            logits = self.model(**enc).logits.float()
        mask = enc["attention_mask"]
        last = (mask * torch.arange(mask.shape[1])).argmax(dim=1)  # the last real token, either padding side
        return logits[torch.arange(logits.shape[0]), last]

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        torch = require_torch()
        parts = []
        for t in texts:
            header, history = split_rm_text(t)
            parts.append((header, history + POINTWISE_QUESTION))
        logits = self._next_token_logits(parts)
        return torch.sigmoid(logits[:, self.yes_id] - logits[:, self.no_id]).numpy().astype(np.float64)

    def rank(self, states: Sequence[AgentState]) -> np.ndarray:
        """Listwise: a probability per candidate (sums to 1) from one prompt listing them all."""
        torch = require_torch()
        states = list(states)
        if not 1 <= len(states) <= MAX_LISTWISE:
            raise ValueError(f"listwise judging takes 1 to {MAX_LISTWISE} candidates, got {len(states)}")
        header = self.fmt.header(states[0])
        body = "".join(f"\n\nCandidate {i + 1}:\n{self.fmt.history(s)}" for i, s in enumerate(states))
        logits = self._next_token_logits([(header, body + LISTWISE_QUESTION)])[0]
        ids = [first_token_id(self.tokenizer, str(i + 1)) for i in range(len(states))]
        return torch.softmax(logits[ids], dim=0).numpy().astype(np.float64)

    def best_of_n(self, states: Sequence[AgentState]) -> int:
        """Index of the candidate the judge ranks first."""
        return int(np.argmax(self.rank(states)))

    def card(self) -> dict[str, Any]:
        return {**super().card(), "backbone": self.backbone, "max_length": self.max_length, **self.meta}

    def save(self, path: str | Path) -> Path:
        from agentrm_gym.rm.card import write_card

        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        write_card(path, self.card())
        return path

    @classmethod
    def load(cls, path: str | Path, card: dict[str, Any], fmt: RMFormat, meta: dict[str, Any],
             **overrides: Any) -> JudgeRewardModel:
        """Rebuild from a directory written by :meth:`save` (``load_reward_model`` calls this)."""
        from agentrm_gym.rm.card import load_model_dir

        model, tok, kwargs = load_model_dir(path, card, meta, "AutoModelForCausalLM", 512)
        return cls(model, tok, fmt, **{**kwargs, **overrides})
