"""BabyAI's macro actions: the admissible commands of a state, their primitive plans and failure messages.

:class:`BabyAIMacros` is a mixin of :class:`~agentrm_gym.envs.babyai.env.BabyAIEnv`. A macro ("go to
red ball 1", "pickup yellow key 1", "go through green open door 1", "toggle and go through blue closed
door 1") is a shortest primitive path found by BFS over the cells seen so far, computed once per state.
Commands are put in canonical form (a door named with any state word) and a command that cannot run
gets AgentBoard's reason ("You cannot pickup red ball 1, as there is no path leading to it.").
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from minigrid.core.actions import Actions

from agentrm_gym.envs.babyai.text import DIR_VEC, Cell, Pose

PRIMITIVES = {
    "turn left": Actions.left,
    "turn right": Actions.right,
    "move forward": Actions.forward,
    "pickup": Actions.pickup,
    "pick up": Actions.pickup,
    "drop": Actions.drop,
    "toggle": Actions.toggle,
}
PRIMITIVE_TEXT = {Actions.left: "turn left", Actions.right: "turn right", Actions.forward: "move forward",
                  Actions.pickup: "pickup", Actions.drop: "drop", Actions.toggle: "toggle"}
PICKABLE = ("key", "ball", "box")
NOT_RECOGNIZED = "The action is not recognized. Please check valid actions."
MACRO_RE = re.compile(
    r"^(go to|pickup|pick up|go through|toggle and go through)\s+"
    r"(red|green|blue|purple|yellow|grey)\s+(?:(open|closed|locked)\s+)?(key|ball|box|door)\s+(\d+)$"
)


class BabyAIMacros:
    """The command half of the BabyAI env (a mixin over :class:`~agentrm_gym.envs.babyai.text.BabyAIText`)."""

    env: Any
    _seen: Any
    _cache: dict[str, Any] | None
    _depths: dict[Pose, int]

    def _macro_table(self) -> dict[str, list[int]]:
        """The admissible commands of the current state -> primitives (BFS computed once per state)."""
        view = self._view()
        if "actions" not in view:
            view["bfs"] = self._bfs()
            view["actions"] = self._macros()
        return view["actions"]

    def _passable(self, x: int, y: int) -> bool:
        if not (0 <= x < self.env.width and 0 <= y < self.env.height) or not self._seen[x, y]:
            return False
        cell = self.env.grid.get(x, y)
        return cell is None or cell.can_overlap()

    def _bfs(self) -> dict[Pose, tuple[Pose, int] | None]:
        """Shortest primitive paths from the agent's pose to every pose over the cells seen so far."""
        env = self.env
        width, height, cells, seen = env.width, env.height, env.grid.grid, self._seen
        start = (int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir))
        parent: dict[Pose, tuple[Pose, int] | None] = {start: None}
        depth = {start: 0}
        passable: dict[Cell, bool] = {}  # _passable, asked once per cell rather than once per pose
        forward, left, right = int(Actions.forward), int(Actions.left), int(Actions.right)
        queue = deque([start])
        while queue:
            pose = queue.popleft()
            x, y, d = pose
            dx, dy = DIR_VEC[d]
            n = depth[pose] + 1
            nxt = (x + dx, y + dy, d)
            if nxt not in parent:
                cell = (nxt[0], nxt[1])
                ok = passable.get(cell)
                if ok is None:
                    cx, cy = cell
                    ok = 0 <= cx < width and 0 <= cy < height and bool(seen[cx, cy])
                    if ok:
                        obj = cells[cy * width + cx]
                        ok = obj is None or obj.can_overlap()
                    passable[cell] = ok
                if ok:
                    parent[nxt] = (pose, forward)
                    depth[nxt] = n
                    queue.append(nxt)
            for action, turned in ((left, (x, y, (d - 1) % 4)), (right, (x, y, (d + 1) % 4))):
                if turned not in parent:
                    parent[turned] = (pose, action)
                    depth[turned] = n
                    queue.append(turned)
        self._depths = depth
        return parent

    def _nearest_poses(self, arrive: bool) -> dict[Cell, Pose]:
        """Per cell, the pose of fewest primitives (then the smallest) that stands on it (``arrive``) or faces it."""
        key = "arrive" if arrive else "face"
        table = self._cache.get(key)  # type: ignore[union-attr]
        if table is None:
            table = {}
            depths = self._depths
            for pose in self._cache["bfs"]:  # type: ignore[index]
                x, y, d = pose
                cell = (x, y) if arrive else (x + DIR_VEC[d][0], y + DIR_VEC[d][1])
                best = table.get(cell)
                if best is None or (depths[pose], pose) < (depths[best], best):
                    table[cell] = pose
            self._cache[key] = table  # type: ignore[index]
        return table

    def _path(self, target: Cell, arrive: bool) -> list[int] | None:
        """Primitives that reach ``target`` (``arrive``) or face it; ``None`` when there is no path."""
        parent = self._cache["bfs"]  # type: ignore[index]
        best = self._nearest_poses(arrive).get(target)
        if best is None:
            return None
        path = []
        node = parent[best]
        while node is not None:
            prev, action = node
            path.append(action)
            node = parent[prev]
        return path[::-1]

    def _macros(self) -> dict[str, list[int]]:
        """Admissible commands of the current state -> their primitive actions."""
        env = self.env
        carrying = env.carrying
        front = env.grid.get(*env.front_pos)
        acts: dict[str, list[int]] = {"turn left": [Actions.left], "turn right": [Actions.right]}
        if front is None or front.can_overlap():
            acts["move forward"] = [Actions.forward]
        if front is not None and front.type in ("door", "box"):
            acts["toggle"] = [Actions.toggle]
        if carrying is not None and front is None:
            acts["drop"] = [Actions.drop]
        for _, pos, obj in self._cache["objects"]:  # type: ignore[index]
            label = f"{self.obj_name(obj)} {obj.agentrm_label}"
            face = self._path(pos, arrive=False)
            if face is None:
                continue
            acts[f"go to {label}"] = face
            if obj.type in PICKABLE and carrying is None:
                acts[f"pickup {label}"] = [*face, Actions.pickup]
            if obj.type == "door":
                if obj.is_open:
                    through = self._path(pos, arrive=True)
                    if through is not None:
                        acts[f"go through {label}"] = through
                elif not obj.is_locked or (
                    carrying is not None and carrying.type == "key" and carrying.color == obj.color
                ):
                    acts[f"toggle and go through {label}"] = [*face, Actions.toggle, Actions.forward]
        return acts

    def admissible_actions(self) -> list[str]:
        return list(self._macro_table())

    def _explain_failure(self, command: str) -> str:
        """The AgentBoard-style reason a command cannot run in this state."""
        env = self.env
        carrying = env.carrying
        if command == "move forward":
            return "There is a barrier in front of you, you can't move forward."
        if command == "drop":
            if carrying is None:
                return "You cannot drop the object, as you are not carrying anything."
            return "You cannot drop the object, as there is already an object in front of you."
        if command == "toggle":
            return "You cannot toggle, as there is no door or box in front of you."
        if command in ("pickup", "pick up"):
            front = env.grid.get(*env.front_pos)
            if carrying is not None:
                return "You cannot pick up, as you are already carrying something."
            return "You cannot pick up, as there is nothing to pick up in front of you." if (
                front is None or not front.can_pickup()) else NOT_RECOGNIZED
        m = MACRO_RE.match(command)
        if m is None:
            return NOT_RECOGNIZED
        verb, color, _state, kind, number = m.groups()
        verb = "pickup" if verb == "pick up" else verb
        obj = self._find_object(color, kind, int(number))
        name = f"{color} {kind} {number}"
        if obj is None:
            return f"You cannot {verb} {name}, as you cannot see it."
        name = f"{self.obj_name(obj)} {number}"
        if verb == "pickup":
            if kind == "door":
                return f"You cannot pickup {name}, as doors cannot be picked up."
            if carrying is not None:
                return f"You cannot pickup {name}, as you are already carrying a {carrying.color} {carrying.type}."
        if verb in ("go through", "toggle and go through") and kind != "door":
            return f"You cannot {verb} {name}, as it is not a door."
        if verb == "go through" and not obj.is_open:
            return f"You cannot go through {name}, as it is closed. You should toggle it first."
        if verb == "toggle and go through":
            if obj.is_open:
                return f"You cannot toggle and go through {name}, as it is already open. You can go through it."
            if obj.is_locked and (carrying is None or carrying.type != "key"):
                return f"You cannot toggle and go through {name}, as you are not carrying a key."
            if obj.is_locked and carrying.color != obj.color:
                return (f"You cannot toggle and go through {name}, as the color of the key you are carrying "
                        "does not match the color of door.")
        return f"You cannot {verb} {name}, as there is no path leading to it."

    def _canonical(self, command: str) -> str:
        text = " ".join(command.lower().rstrip(".").split())
        if text.startswith("pick up "):
            text = "pickup " + text[len("pick up "):]
        m = MACRO_RE.match(text)
        if m is not None:  # accept a door named with or without (or with a stale) state word
            verb, color, _state, kind, number = m.groups()
            obj = self._find_object(color, kind, int(number))
            if obj is not None:
                return f"{'pickup' if verb == 'pick up' else verb} {self.obj_name(obj)} {number}"
        return text
