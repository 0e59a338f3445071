"""The one TensorBoard writer helper (:mod:`agentrm_gym.tblog`): a writer when tensorboard is installed,
``None`` and one warning when it is not, and every trainer and stage going on without it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from agentrm_gym import tblog


@pytest.fixture
def no_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """tensorboard, torch's writer and tensorboardX cannot be imported; the one-time warning is re-armed."""
    for name in ("tensorboard", "torch.utils.tensorboard", "tensorboardX"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(tblog, "_warned", False)


def test_summary_writer_writes_events(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("torch")
    writer = tblog.summary_writer(tmp_path / "tb")
    assert writer is not None and tblog.tensorboard_available(warn=False)
    writer.add_scalar("charts/success_rate", 0.5, 1)
    writer.close()
    assert list((tmp_path / "tb").glob("events.out.tfevents*"))


def test_summary_writer_is_none_without_tensorboard(no_tensorboard, tmp_path) -> None:
    with pytest.warns(RuntimeWarning, match="tensorboard is not installed"):
        assert tblog.summary_writer(tmp_path / "tb") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once a process, not once a call
        assert tblog.summary_writer(tmp_path / "tb") is None
        assert not tblog.tensorboard_available()
    assert not (tmp_path / "tb").exists()


def test_broken_tensorboard_import_gives_none(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # present, but its import fails
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setattr(tblog, "_warned", False)
    with pytest.warns(RuntimeWarning):
        assert tblog.summary_writer(tmp_path) is None


def test_pipeline_writer_and_rm_trainer_go_on_without_tensorboard(no_tensorboard, tmp_path) -> None:
    from agentrm_gym.train.common import tb_writer

    with pytest.warns(RuntimeWarning):
        assert tb_writer(tmp_path, "rm") is None
    torch = pytest.importorskip("torch")
    from agentrm_gym.rm.trainer import TrainConfig, fit

    class Saves:  # what fit's checkpoints ask of a model and a tokenizer
        def save_pretrained(self, path) -> None:
            Path(path).mkdir(parents=True, exist_ok=True)

    class Model(torch.nn.Linear, Saves):
        pass

    x = torch.ones(4, 1)

    def batch_loss(m, idx):
        return ((m(x[idx]) - 1.0) ** 2).mean()

    _, summary = fit(Model(1, 1), Saves(), 4, batch_loss, None, tmp_path / "rm", TrainConfig(epochs=1, batch_size=2),
                     loss_tag="losses/rm_mse", default_lr=1e-2)
    assert summary["steps"] == 2
    assert not list(tmp_path.rglob("events.out.tfevents*"))
