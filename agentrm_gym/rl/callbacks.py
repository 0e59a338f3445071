"""stable-baselines3 callbacks of ours, to pass as ``callbacks=`` to a trainer of :mod:`agentrm_gym.rl`.

* :func:`progress_bar` - a tqdm bar of the environment steps on stderr.

SB3's own ``ProgressBarCallback`` (``learn(progress_bar=True)``) needs no network either, but it draws with
``tqdm.rich`` on stdout, where ``agentrm ppo`` prints its JSON lines, and without a label; this one writes to a
file of the caller's choice (stderr by default). The SB3 classes are imported when a callback is made.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def progress_bar(total: int, desc: str = "ppo", disable: bool | None = None, file: TextIO | None = None) -> Any:
    """An SB3 ``BaseCallback`` drawing a tqdm bar of ``total`` environment steps.

    Args:
        total: the ``total_timesteps`` of the run (the bar's 100%).
        desc: the bar's label.
        disable: ``None`` draws only on a terminal, ``True`` never, ``False`` always.
        file: where the bar goes (default ``sys.stderr``, read when training starts).

    Raises:
        MissingExtra: stable-baselines3 is not installed (``pip install 'agentrm-gym[rl]'``).
    """
    from agentrm_gym.rl.ppo import require_sb3

    require_sb3()
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class TqdmProgressBar(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, desc=desc, unit="step", file=file or sys.stderr, leave=False,
                            disable=disable, dynamic_ncols=True)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return TqdmProgressBar()
