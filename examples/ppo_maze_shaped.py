"""MaskablePPO on Maze with a sparse reward vs the same reward shaped by a learned value RM.

1. Label epsilon-greedy oracle rollouts on the double-T maze with oracle values ``1 - d/d0`` and train a tiny
   from-scratch value RM on them (a minute on a CPU).
2. Report the RM's quality (RMB pairwise / Best-of-N accuracy, Spearman) on held-out oracle comparison sets.
3. Train MaskablePPO twice with the same seed and budget: reward = 1 on success (sparse), and sparse +
   potential shaping ``0.99 * V(s') - V(s)`` by the RM; evaluate both every ``--eval-every`` steps on the 25
   double-T start cells (greedy masked actions) and print the success-rate curves side by side, with a third
   run shaped by the exact oracle potential (the RM's own label) as the ceiling of what shaping can give.

Run:  python examples/ppo_maze_shaped.py --steps 10000 --eval-every 2000 --seeds 0 1 2
TensorBoard logs go to runs/Maze__ppo_sparse__{seed} and runs/Maze__ppo_rm__{seed}; curves are averaged over
the PPO seeds (one seed is noisy).
"""

from __future__ import annotations

import argparse
import time

import torch

from agentrm_gym.envs.maze import DOUBLE_T_GOAL, DOUBLE_T_MAZE, bfs_distances, parse_grid
from agentrm_gym.rl.ppo import train_maskable_ppo
from agentrm_gym.rm import FunctionRewardModel, RMFormat, TrainConfig, train_value_rm
from agentrm_gym.rm.metrics import build_comparison_sets, evaluate_rm, oracle_value_samples

ENV = "agentrm/Maze-v0"
POSITION = "Your current position is at position "


def oracle_potential() -> FunctionRewardModel:
    """The exact label the RM learns, 1 - d/d0, read from the state text (a ceiling for RM shaping)."""
    dist = bfs_distances(parse_grid(DOUBLE_T_MAZE), DOUBLE_T_GOAL)

    def distance(text: str) -> int:
        if text == "Success":
            return 0
        r, c = text.split(POSITION)[1].split(".")[0].split(", ")
        return dist[(int(r), int(c))]

    return FunctionRewardModel(lambda s: 1.0 - distance(s.last_observation) / max(1, distance(s.observation)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20_000, help="PPO env steps per run")
    ap.add_argument("--eval-every", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the RM data and training")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="PPO seeds (curves are averaged)")
    ap.add_argument("--rm-episodes", type=int, default=60, help="labelled rollouts for the RM")
    ap.add_argument("--rm-epochs", type=int, default=4)
    ap.add_argument("--out", default="runs")
    args = ap.parse_args()
    torch.set_num_threads(1)

    t0 = time.time()
    samples = oracle_value_samples(ENV, episodes=args.rm_episodes, epsilon=0.5, seed=args.seed, split="test")
    rm = train_value_rm(
        samples, TrainConfig(epochs=args.rm_epochs, batch_size=32, max_length=96, seed=args.seed, resume=False),
        backbone="tiny", out_dir=f"{args.out}/Maze__value_rm__{args.seed}", fmt=RMFormat(drop_thoughts=True),
        tiny_kwargs={"hidden_size": 64, "vocab_size": 500},
    )
    quality = evaluate_rm(rm, build_comparison_sets(ENV, episodes=15, seed=1000 + args.seed, progress_bar=False))
    print(f"value RM: {len(samples)} labelled states, trained in {time.time() - t0:.0f}s; "
          f"pairwise acc {quality['pairwise_accuracy']:.3f}, Best-of-N acc {quality['best_of_n_accuracy']:.3f}, "
          f"Spearman {quality['spearman']:.3f}")

    arms = {"sparse": None, "rm-shaped": rm, "oracle-shaped": oracle_potential()}
    curves: dict[str, list[list[dict[str, float]]]] = {name: [] for name in arms}
    for seed in args.seeds:
        for name, potential in arms.items():
            t = time.time()
            tag = name.split("-")[0]
            res = train_maskable_ppo(
                ENV, reward="sparse" if potential is None else "rm", rm=potential, steps=args.steps, seed=seed,
                split="test",
                eval_every=args.eval_every, eval_episodes=25, max_actions=4, feature_dim=256, gamma=0.99,
                logdir=f"{args.out}/Maze__ppo_{tag}__{seed}", n_steps=512, batch_size=128,
            )
            curves[name].append(res.curve)
            print(f"{name} seed {seed}: {args.steps} steps in {time.time() - t:.0f}s; success "
                  + " ".join(f"{p['success_rate']:.2f}" for p in res.curve))

    print(f"\nsuccess rate on the 25 double-T starts (greedy policy), mean over seeds {args.seeds}")
    print(f"{'steps':>8}  {'sparse':>8}  {'rm-shaped':>9}  {'oracle-shaped':>13}")
    n = min(len(c) for runs in curves.values() for c in runs)
    for i in range(n):
        steps = int(curves["sparse"][0][i]["steps"])
        mean = {k: sum(c[i]["success_rate"] for c in runs) / len(runs) for k, runs in curves.items()}
        print(f"{steps:>8}  {mean['sparse']:>8.2f}  {mean['rm-shaped']:>9.2f}  {mean['oracle-shaped']:>13.2f}")

if __name__ == "__main__":
    main()
