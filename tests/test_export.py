"""``agentrm export``: a smoke run's data as TRL / OpenRLHF / chat files, loaded by ``datasets`` and fed to TRL."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from agentrm_gym.cli import app
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.train.export import PLACEHOLDER, ExportError, export, export_rows
from agentrm_gym.trajectory import read_jsonl, state_from_dict

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets", reason="datasets is in the dev extra: pip install 'agentrm-gym[dev]'")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from agentrm_gym.train.pipeline import preset, run_pipeline

    out = tmp_path_factory.mktemp("smoke_run")
    cfg = preset("smoke").replace(eval_methods=["greedy"], rm_eval_episodes=0)
    run_pipeline(cfg, out, ["expert", "sft", "explore", "extract"])
    return out


def _cli_export(run_dir, tmp_path, fmt, *extra):
    out = tmp_path / f"{fmt}.jsonl"
    r = CliRunner().invoke(app, ["export", str(run_dir), "--format", fmt, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("wrote ") and str(out) in r.output
    return out


def _load(path):
    return datasets.load_dataset("json", data_files=str(path), split="train")


def _tree_nodes(run_dir):
    return [n for f in sorted((run_dir / "explore" / "trees").glob("*.jsonl")) for n in read_jsonl(f)]


def test_trl_stepwise_rows_follow_the_tree_values(run_dir, tmp_path):
    path = _cli_export(run_dir, tmp_path, "trl-stepwise", "--labels", "mcts", "--threshold", "0.3")
    ds = _load(path)
    assert ds.column_names == ["prompt", "completions", "labels"]
    nodes = _tree_nodes(run_dir)
    leaves = [n for n in nodes if not n["children"] and n["parent"] is not None]
    assert len(ds) == len(leaves) > 0
    by_key = {state_from_dict(n["state"]).key(): n for n in nodes}
    fmt = RMFormat()
    for row, leaf in zip(ds, leaves, strict=True):
        state = state_from_dict(leaf["state"])
        assert len(row["completions"]) == len(row["labels"]) == len(state.steps)
        assert all(isinstance(x, bool) for x in row["labels"])
        # the prompt and the steps joined by TRL's default separator are the RM text of the leaf
        assert row["prompt"] + "".join(c + "\n" for c in row["completions"]) == fmt.text(state) + "\n"
        # step t is labelled by the value of the node it leads to
        for t, label in enumerate(row["labels"]):
            prefix = state_from_dict({**leaf["state"], "steps": leaf["state"]["steps"][: t + 1]})
            assert label == (by_key[prefix.key()]["V"] >= 0.3)
    everything = export_rows(run_dir, "trl-stepwise", threshold=0.0)
    assert all(all(r["labels"]) for r in everything)


def test_trl_stepwise_td_and_outcome_labels(run_dir, tmp_path):
    td = export_rows(run_dir, "trl-stepwise", labels="td")
    rollouts = list(read_jsonl(run_dir / "explore" / "rollouts.jsonl"))
    assert len(td) == sum(1 for r in rollouts if r["steps"])
    outcome = export_rows(run_dir, "trl-stepwise", labels="outcome", step_format="action")
    expert = list(read_jsonl(run_dir / "expert" / "trajectories.jsonl"))
    assert len(outcome) == len(expert) + len(td)
    first = outcome[0]
    assert first["completions"] == [s["action"].strip() for s in expert[0]["steps"]]
    assert set(first["labels"]) == {expert[0]["progress"] >= 0.5}
    summary = export(run_dir, "trl-stepwise", tmp_path / "td.jsonl", labels="td", threshold=0.3)
    assert summary["rows"] == len(td) and summary["steps"] == sum(len(r["labels"]) for r in td)
    assert len(_load(tmp_path / "td.jsonl")) == len(td)


def test_trl_prm_trainer_runs_one_step(run_dir, tmp_path):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    try:
        from trl.experimental.prm import PRMConfig, PRMTrainer
    except ImportError:
        try:
            from trl import PRMConfig, PRMTrainer  # trl < 0.26
        except ImportError:
            pytest.skip("TRL's PRMTrainer is not installed (it was removed after trl 1.13: pip install 'trl<=1.13')")
    from transformers import AutoTokenizer, GPT2Config, GPT2ForTokenClassification

    path = tmp_path / "prm.jsonl"
    export(run_dir, "trl-stepwise", path, labels="td", threshold=0.3)
    ds = _load(path)
    tok = AutoTokenizer.from_pretrained(str(run_dir / "sft" / "policy"))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = GPT2ForTokenClassification(GPT2Config(
        vocab_size=len(tok), n_positions=1024, n_layer=1, n_embd=32, n_head=2, num_labels=2,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    args = PRMConfig(output_dir=str(tmp_path / "prm_out"), max_steps=1, per_device_train_batch_size=2,
                     report_to="none", use_cpu=True, max_length=1024, save_strategy="no", logging_steps=1,
                     disable_tqdm=True)
    trainer = PRMTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    for row, tokenized in zip(ds, trainer.train_dataset, strict=True):  # one label per step, at its end
        assert [x for x in tokenized["labels"] if x != -100] == [int(x) for x in row["labels"]]
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss > 0


def test_rm_pairs_siblings_and_states(run_dir, tmp_path):
    path = _cli_export(run_dir, tmp_path, "rm-pairs")
    ds = _load(path)
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) > 0
    fmt = RMFormat()
    nodes = _tree_nodes(run_dir)
    texts = {}
    for n in nodes:
        s = state_from_dict(n["state"])
        texts[fmt.text(s)] = n["V"]
    for row in ds:
        chosen, rejected = row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]
        assert texts[chosen] > texts[rejected]  # prompt + step is the child's RM text
    states = _load(_cli_export(run_dir, tmp_path, "rm-pairs", "--pairs", "states", "--margin", "0.05"))
    assert states.column_names == ["chosen", "rejected"] and len(states) > 0
    values: dict[str, list[float]] = {}
    for r in read_jsonl(run_dir / "extract" / "pairs.jsonl"):
        values.setdefault(fmt.text(state_from_dict(r["state"])), []).append(r["value"])
    mean = {text: sum(vs) / len(vs) for text, vs in values.items()}  # a state in several groups is averaged
    assert all(mean[c] - mean[r] > 0.05 for c, r in zip(states["chosen"], states["rejected"], strict=True))
    assert all(c != r for c, r in zip(states["chosen"], states["rejected"], strict=True))
    with pytest.raises(ExportError, match="lower --margin"):
        export(run_dir, "rm-pairs", tmp_path / "none.jsonl", margin=1.0)


def test_rm_pairs_feed_trl_reward_trainer(run_dir, tmp_path):
    try:
        from trl import RewardConfig, RewardTrainer
    except ImportError:
        pytest.skip("trl is not installed")
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    path = tmp_path / "pairs.jsonl"
    export(run_dir, "rm-pairs", path, pairs="states")
    tok = AutoTokenizer.from_pretrained(str(run_dir / "sft" / "policy"))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = GPT2ForSequenceClassification(GPT2Config(
        vocab_size=len(tok), n_positions=1024, n_layer=1, n_embd=32, n_head=2, num_labels=1,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    args = RewardConfig(output_dir=str(tmp_path / "rw_out"), max_steps=1, per_device_train_batch_size=2,
                        report_to="none", use_cpu=True, max_length=1024, save_strategy="no", disable_tqdm=True)
    out = RewardTrainer(model=model, args=args, train_dataset=_load(path), processing_class=tok).train()
    assert out.global_step == 1


def test_openrlhf_prm_rows_match_its_dataset_logic(run_dir, tmp_path):
    from transformers import AutoTokenizer

    path = _cli_export(run_dir, tmp_path, "openrlhf-prm", "--labels", "td", "--threshold", "0.3")
    ds = _load(path)
    assert ds.column_names == ["input", "value"]
    stepwise = export_rows(run_dir, "trl-stepwise", labels="td", threshold=0.3)
    assert len(ds) == len(stepwise)
    tok = AutoTokenizer.from_pretrained(str(run_dir / "sft" / "policy"))
    tok.add_tokens([PLACEHOLDER])  # OpenRLHF needs the placeholder to be one token
    placeholder_id = tok.convert_tokens_to_ids(PLACEHOLDER)
    for row, ref in zip(ds, stepwise, strict=True):
        assert set(row["value"]) <= {"+", "-"}
        assert row["value"] == ["+" if x else "-" for x in ref["labels"]]
        assert row["input"].count(PLACEHOLDER) == len(row["value"]) and row["input"].endswith(" " + PLACEHOLDER)
        # ProcessRewardDataset: labels go to the placeholder positions of the tokenized input
        ids = torch.tensor(tok(row["input"], add_special_tokens=False)["input_ids"])
        assert int((ids == placeholder_id).sum()) == len(row["value"])
    soft = export_rows(run_dir, "openrlhf-prm", labels="td", soft_labels=True)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for r in soft for v in r["value"])


def test_messages_from_sharegpt(run_dir, tmp_path):
    path = _cli_export(run_dir, tmp_path, "messages", "--system", "You are a careful agent.")
    ds = _load(path)
    assert ds.column_names == ["messages"]
    sft = list(read_jsonl(run_dir / "expert" / "sft.jsonl"))
    assert len(ds) == len(sft)
    row, src = ds[0]["messages"], sft[0]["conversations"]
    assert row[0] == {"role": "system", "content": "You are a careful agent."}
    assert [m["role"] for m in row[1:]] == [{"human": "user", "gpt": "assistant"}[c["from"]] for c in src]
    assert [m["content"] for m in row[1:]] == [c["value"] for c in src]
    try:
        from trl.data_utils import is_conversational
    except ImportError:
        pass
    else:
        assert is_conversational(ds[0])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(run_dir / "sft" / "policy"))
    if tok.chat_template:
        text = tok.apply_chat_template(row, tokenize=False)
        assert src[-1]["value"] in text


def test_export_errors_are_one_line(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["export", str(tmp_path / "empty"), "--format", "trl-stepwise",
                                 "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "agentrm pipeline explore --out" in r.output
    r = CliRunner().invoke(app, ["export", str(run_dir), "--format", "nope", "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "unknown format 'nope'" in r.output and r.output.count("\n") == 1
    with pytest.raises(ExportError, match="unknown export option"):
        export_rows(run_dir, "messages", colour="red")
    assert not (tmp_path / "x.jsonl").exists()
    json.dumps(export_rows(run_dir, "messages")[0])  # plain JSON values
