"""AgentBoard's text view of BabyAI: what the agent sees, the object numbering and the observation text.

:class:`BabyAIText` is a mixin of :class:`~agentrm_gym.envs.babyai.env.BabyAIEnv`. It reads the
agent's 7x7 egocentric view, records the cells seen so far, numbers objects at first sight ("red ball
1", kept for the whole episode) and renders the view as AgentBoard's sentences ("There is a red ball 1
3 steps in front of you and 1 steps to your left. ... You are not carrying anything.").
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Minigrid direction index -> (dx, dy): right, down, left, up.
DIR_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))

Cell = tuple[int, int]
Pose = tuple[int, int, int]


class BabyAIText:
    """The perception and rendering half of the BabyAI env (a mixin; ``self.env`` is the minigrid env)."""

    env: Any
    _seen: np.ndarray
    _label_counts: dict[str, int]
    _cache: dict[str, Any] | None

    def _invalidate(self) -> None:
        self._cache = None

    def _view(self, image: np.ndarray | None = None) -> dict[str, Any]:
        """What the agent sees now: visible objects (labelled), the BFS map, and the admissible macros.

        ``image``: minigrid's observation of this state (``obs["image"]`` of the step or reset that made
        it), whose visible cells are exactly those with a non-zero type ("unseen" is 0): passing it saves
        recomputing ``gen_obs_grid()``, which minigrid has just done.
        """
        if self._cache is not None:
            return self._cache
        env = self.env
        vis = env.gen_obs_grid()[1] if image is None else image[:, :, 0] != 0
        size = env.agent_view_size
        ax, ay = int(env.agent_pos[0]), int(env.agent_pos[1])
        fx, fy = DIR_VEC[env.agent_dir]
        rx, ry = -fy, fx
        top_x = ax + fx * (size - 1) - rx * (size // 2)
        top_y = ay + fy * (size - 1) - ry * (size // 2)
        visible: list[tuple[int, int, int, Any]] = []
        for j in range(size):
            for i in range(size):
                if not vis[i, j]:
                    continue
                x, y = top_x - fx * j + rx * i, top_y - fy * j + ry * i
                if not (0 <= x < env.width and 0 <= y < env.height):
                    continue
                self._seen[x, y] = True
                cell = env.grid.get(x, y)
                if cell is not None and cell.type != "wall" and (x, y) != (ax, ay):
                    visible.append((abs(x - ax) + abs(y - ay), x, y, cell))
        visible.sort(key=lambda t: (t[0], t[1], t[2]))
        for _, _, _, obj in visible:  # numbers are given at first sight and kept all episode
            if getattr(obj, "agentrm_label", None) is None:
                base = f"{obj.color} {obj.type}"
                self._label_counts[base] = self._label_counts.get(base, 0) + 1
                obj.agentrm_label = self._label_counts[base]
        objects = [(d, (x, y), obj) for d, x, y, obj in visible]
        self._cache = {"objects": objects}
        return self._cache

    @staticmethod
    def obj_name(obj: Any) -> str:
        """``red ball``, ``blue locked door``, ..."""
        if obj.type == "door":
            state = "locked" if obj.is_locked else ("open" if obj.is_open else "closed")
            return f"{obj.color} {state} door"
        return f"{obj.color} {obj.type}"

    def _describe(self) -> str:
        env = self.env
        view = self._view()
        ax, ay = int(env.agent_pos[0]), int(env.agent_pos[1])
        fx, fy = DIR_VEC[env.agent_dir]
        rx, ry = -fy, fx
        parts = []
        for _, (x, y), obj in view["objects"]:
            front = (x - ax) * fx + (y - ay) * fy
            right = (x - ax) * rx + (y - ay) * ry
            if right == 0:
                where = f"right in front of you {front} steps away"
            elif front == 0:
                where = f"{abs(right)} steps to your {'right' if right > 0 else 'left'}"
            else:
                where = f"{front} steps in front of you and {abs(right)} steps to your {'right' if right > 0 else 'left'}"
            parts.append(f"There is a {self.obj_name(obj)} {obj.agentrm_label} {where}.")
        if parts:
            text = "In front of you in this room, you can see several objects: " + " ".join(parts)
        else:
            text = "You cannot see any objects within sight."
        text += " The room has walls around you."
        for k in range(1, env.agent_view_size):
            x, y = ax + fx * k, ay + fy * k
            if not (0 <= x < env.width and 0 <= y < env.height):
                break
            cell = env.grid.get(x, y)
            if cell is not None and not cell.can_overlap():
                thing = "wall" if cell.type == "wall" else self.obj_name(cell)
                text += f" You are facing a {thing} {k} steps away."
                break
        text += " " + self._carrying_text()
        return text

    def _carrying_text(self) -> str:
        carrying = self.env.carrying
        if carrying is None:
            return "You are not carrying anything."
        return f"You are carrying a {carrying.color} {carrying.type}."

    def _find_object(self, color: str, kind: str, number: int) -> Any:
        for _, _pos, obj in self._view()["objects"]:
            if obj.color == color and obj.type == kind and obj.agentrm_label == number:
                return obj
        return None

    def _label(self, obj: Any) -> str | None:
        if obj is None or getattr(obj, "agentrm_label", None) is None:
            return None
        return f"{self.obj_name(obj)} {obj.agentrm_label}"

