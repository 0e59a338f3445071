"""The fused GPT-2 decoding step (agentrm_gym/agents/decode.py): bit-identical to the module forward, greedy
token-identical to ``transformers``' ``generate``, the same sampled draws as the module path, the fallback
for other architectures, and the RL rollouts on it. Tiny models made on the spot from a config."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs the [llm] extra")
pytest.importorskip("transformers", reason="needs the [llm] extra")

CORPUS = ["### User:\nGoal: open the red door.\nObservation: You see a key.\n\n### Assistant:\nThought: take it\n"
          "Action: take key", "### User:\nObservation: nothing happens.\n\n### Assistant:\nAction: go north",
          "You are in a kitchen. On the counter 1 you see a mug 2 and an apple 1. Your task is to heat the mug."] * 4


@pytest.fixture(scope="module")
def tiny():
    """A tokenizer trained on a few lines and a randomly initialised 2-layer GPT-2 for it."""
    from agentrm_gym.agents.tiny import build_tiny_model, train_tokenizer

    tok = train_tokenizer(CORPUS, 300)
    return build_tiny_model(tok, n_layer=2, n_embd=64, n_head=4, n_positions=256, seed=1), tok


def _prompts(tok, lengths):
    """Token-id prompts of the given lengths, cut from the corpus."""
    ids = tok(" ".join(CORPUS), add_special_tokens=False)["input_ids"]
    return [ids[k:k + n] for k, n in enumerate(lengths)]


def test_fused_passes_are_the_module_forward_bit_for_bit(tiny) -> None:
    """A left-padded prompt pass (over a reused past) and decoding steps give the module's logits exactly,
    with and without padding; an in-place weight update is seen (the decoder holds no copies)."""
    from transformers import DynamicCache

    from agentrm_gym.agents.decode import FusedDecoding, StaticKVCache, fused_decoder

    model, tok = tiny
    for lengths in ([23, 9, 1], [12, 12]):
        prompts = _prompts(tok, lengths)
        width = max(lengths)
        ids = torch.full((len(prompts), width), tok.pad_token_id)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        pos = torch.zeros((len(prompts), width), dtype=torch.long)
        for j, p in enumerate(prompts):
            ids[j, width - len(p):], mask[j, width - len(p):] = torch.tensor(p), 1
            pos[j, width - len(p):] = torch.arange(len(p))
        with torch.inference_mode():
            ref_cache = DynamicCache()
            split = width - 1  # a pass over all but the last column, then one over it with the first as past
            out = model(input_ids=ids[:, :split], attention_mask=mask[:, :split], position_ids=pos[:, :split],
                        cache=ref_cache, use_cache=True)
            ref = [model(input_ids=ids[:, split:], attention_mask=mask, position_ids=pos[:, split:],
                         cache=ref_cache, use_cache=True).logits[:, -1].float()]
            decoder = fused_decoder(model)
            cache = StaticKVCache.allocate(decoder, len(prompts), width + 4, "cpu")
            decoder.prefill(ids[:, :split], pos[:, :split], mask[:, :split], cache)
            got = [decoder.prefill(ids[:, split:], pos[:, split:], mask, cache)]
            decoding = FusedDecoding(decoder, cache, mask, torch.tensor([[len(p)] for p in prompts]),
                                     torch.arange(len(prompts)), 4)
            full, nxt = mask, torch.tensor([[len(p)] for p in prompts])
            for _ in range(3):
                token = ref[-1].argmax(-1)
                full = torch.cat([full, torch.ones((len(prompts), 1), dtype=torch.long)], dim=1)
                ref.append(model(input_ids=token[:, None], attention_mask=full, position_ids=nxt, cache=ref_cache,
                                 use_cache=True).logits[:, -1].float())
                got.append(decoding.step(token))
                nxt = nxt + 1
        assert out.logits.isfinite().all()
        for a, b in zip(ref, got, strict=True):
            assert torch.equal(a, b)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight.mul_(1.5)
    try:
        with torch.inference_mode():
            x = torch.tensor([prompts[0]])
            want = model(input_ids=x, logits_to_keep=1).logits[:, -1].float()
            cache = StaticKVCache.allocate(decoder, 1, x.shape[1], "cpu")
            assert torch.equal(decoder.prefill(x, torch.arange(x.shape[1])[None], torch.ones_like(x), cache), want)
    finally:
        with torch.no_grad():
            model.transformer.h[0].mlp.c_fc.weight.div_(1.5)


def test_fused_greedy_is_token_identical_to_hf_generate(tiny) -> None:
    """Greedy rows of prompts of several lengths (batch > 1; lengths far apart, so the prompt passes are
    merged into one cache) are generate's tokens, with generate's log-probs."""
    from agentrm_gym.agents.hf import HFGenerator

    model, tok = tiny
    prompts = [tok.decode(p) for p in _prompts(tok, [5, 17, 60, 110])]
    ref = HFGenerator(model, tok, mode="generate").generate(prompts, 2, 0.0, 24, stop=())
    for cache_mb in (256, 0):
        fused = HFGenerator(model, tok, prefix_cache_mb=cache_mb)
        assert fused.fused
        for _ in range(2):  # the second call resumes every prompt from the prefix cache
            got = fused.generate(prompts, 2, 0.0, 24, stop=())
            for a, b in zip(got, ref, strict=True):
                assert [s.token_ids for s in a] == [s.token_ids for s in b] and a[0].text == b[0].text
                assert len(a[0].token_ids) == 24
                assert a[0].token_logprobs == pytest.approx(b[0].token_logprobs, abs=1e-4)


def test_fused_sampling_draws_what_the_module_path_draws(tiny) -> None:
    """With the same seed the fused and the module decoding sample the same tokens with the same log-probs,
    bit for bit: Best-of-N rows, top-p, stop strings, an empty prompt, a prefix cache across calls."""
    from agentrm_gym.agents.sampling import PrefixCache, sample_continuations

    model, tok = tiny
    first = _prompts(tok, [40, 3, 90]) + [[]]
    second = [p + [7, 8, 9] for p in first[:3]]  # each resumes from its first-call prefix
    runs = []
    for fused in (True, False):
        torch.manual_seed(11)
        cache = PrefixCache()
        rows = []
        for prompts, temperature, top_p in ((first, 1.0, 1.0), (second, 0.7, 0.9)):
            out = sample_continuations(model, tok, prompts, 3, temperature, 20, stop=("e", "\n###"),
                                       top_p=top_p, prefix_cache=cache, fused=fused)
            rows += [(r.token_ids, r.token_logprobs, r.stopped) for per in out for r in per]
        runs.append(rows)
    assert runs[0] == runs[1]
    assert len({tuple(t) for t, _, _ in runs[0]}) > 3 and any(s for _, _, s in runs[0])


def test_other_models_fall_back_to_the_module_path(tiny) -> None:
    """A Llama (another architecture), a model in training mode or with eager attention get no fused
    decoder; the sampler still decodes them (greedy = generate)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from agentrm_gym.agents.decode import fused_decoder
    from agentrm_gym.agents.hf import HFGenerator

    model, tok = tiny
    assert fused_decoder(model) is not None
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).eval()
    eager = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=32, n_head=2,
                                       attn_implementation="eager")).eval()
    assert fused_decoder(llama) is None and fused_decoder(eager) is None
    model.train()
    try:
        assert fused_decoder(model) is None
    finally:
        model.eval()
    prompts = [tok.decode(p) for p in _prompts(tok, [8, 30])]
    got = HFGenerator(llama, tok).generate(prompts, 1, 0.0, 12, stop=())
    ref = HFGenerator(llama, tok, mode="generate").generate(prompts, 1, 0.0, 12, stop=())
    assert [r[0].token_ids for r in got] == [r[0].token_ids for r in ref]


def test_a_position_past_the_table_fails_as_in_the_module_path(tiny) -> None:
    from agentrm_gym.agents.sampling import sample_continuations

    model, tok = tiny
    prompt = (_prompts(tok, [60])[0] * 5)[:250]  # 256 positions: the 7th new token has none
    for fused in (True, False):
        with pytest.raises(IndexError):
            sample_continuations(model, tok, [prompt], 1, 0.0, 10, fused=fused)
        assert len(sample_continuations(model, tok, [prompt], 1, 0.0, 6, fused=fused)[0][0].token_ids) == 6


def test_rl_rollouts_decode_with_the_fused_step(tiny, monkeypatch) -> None:
    """The trainer's rollouts run the fused step by default and play the same turns with it switched off."""
    from agentrm_gym.agents.decode import GPT2Decoder
    from agentrm_gym.agents.hf import TransformersPolicy
    from agentrm_gym.agents.prompts import CompactPromptBuilder
    from agentrm_gym.rl.policy_gradient import PolicyGradientTrainer, RLConfig
    from agentrm_gym.rl.rewards import make_reward_spec

    model, tok = tiny
    steps = []
    forward = GPT2Decoder.forward
    monkeypatch.setattr(GPT2Decoder, "forward", lambda self, *a, **k: steps.append(1) or forward(self, *a, **k))
    turns = []
    for fused in (True, False):
        policy = TransformersPolicy(model, tok, builder=CompactPromptBuilder(), max_new_tokens=8, seed=0)
        cfg = RLConfig(tasks=["Maze"], train_ids=2, groups=1, group_size=3, max_turns=2, fused_decode=fused)
        trainer = PolicyGradientTrainer(policy, make_reward_spec("success"), cfg)
        try:
            before = len(steps)
            episodes = trainer.rollout(0)
            assert (len(steps) > before) == fused and policy.engine.fused  # the switch is restored after
        finally:
            trainer.close()
        turns.append([(t.completion_ids, t.old_logprobs) for e in episodes for t in e.turns])
    assert turns[0] == turns[1] and turns[0]
