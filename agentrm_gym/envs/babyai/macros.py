"""BabyAI's macro actions: the admissible commands of a state, their primitive plans and failure messages.

:class:`BabyAIMacros` is a mixin of :class:`~agentrm_gym.envs.babyai.env.BabyAIEnv`. A macro ("go to
red ball 1", "pickup yellow key 1", "go through green open door 1", "toggle and go through blue closed
door 1") is a shortest primitive path found by BFS over the cells seen so far, computed once per state.
Commands are put in canonical form (a door named with any state word) and a command that cannot run
gets AgentBoard's reason ("You cannot pickup red ball 1, as there is no path leading to it.").
"""

from __future__ import annotations

import re
from typing import Any

from minigrid.core.actions import Actions

from agentrm_gym.envs.babyai.text import DIR_VEC, Cell

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

    def _macro_table(self) -> dict[str, list[int]]:
        """The admissible commands of the current state -> primitives (BFS computed once per state)."""
        view = self._view()
        if "actions" not in view:
            view["bfs"] = self._bfs()
            view["actions"] = self._macros()
        return view["actions"]

    def _bfs(self) -> dict[str, list[int]]:
        """Shortest primitive paths from the agent's pose to every pose over the cells seen so far.

        Poses are integers ``(y * width + x) * 4 + d``; the result holds the poses in the order BFS reached
        them (``order``: forward before left before right, so ties go as they always went) and, indexed by
        pose, each one's parent (``parent``; -1: the start), last action (``action``) and number of
        primitives (``depth``). The search
        stops once every pose as near as the farthest target is reached (the targets: a pose facing each
        visible object, one standing in each visible open door), since macros ask for nothing else.
        """
        env = self.env
        width, height, cells, seen = env.width, env.height, env.grid.grid, self._seen
        ax, ay, ad = int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir)
        start = (ay * width + ax) * 4 + ad
        size = width * height * 4
        parent = [-2] * size  # -2: not reached; -1: the start
        action_of = [0] * size
        depth = [0] * size
        parent[start] = -1
        # per cell: 1 if the agent may step onto it (seen, and empty or overlappable), 0 if not; asked lazily
        step_to: list[int | None] = [None] * (width * height)
        forward, left, right = int(Actions.forward), int(Actions.left), int(Actions.right)
        face: set[int] = set()  # cells to face / to stand in, not yet reached
        arrive: set[int] = set()
        for _, (x, y), obj in self._cache["objects"]:  # type: ignore[index]
            face.add(y * width + x)
            if obj.type == "door" and obj.is_open:
                arrive.add(y * width + x)
        order = [start]
        head = 0
        limit = 1 << 30 if face else 0  # the depth at which the last target was reached
        while head < len(order):
            pose = order[head]
            head += 1
            cell, d = pose >> 2, pose & 3
            dx, dy = DIR_VEC[d]
            x, y = cell % width + dx, cell // width + dy
            target = y * width + x if 0 <= x < width and 0 <= y < height else -1  # the cell in front
            if face or arrive:
                arrive.discard(cell)
                face.discard(target)
                if not (face or arrive):
                    limit = depth[pose]
            if depth[pose] >= limit:
                break
            n = depth[pose] + 1
            if target >= 0:
                ok = step_to[target]
                if ok is None:
                    obj = cells[target]
                    ok = 1 if bool(seen[x, y]) and (obj is None or obj.can_overlap()) else 0
                    step_to[target] = ok
                nxt = target * 4 + d
                if ok and parent[nxt] == -2:
                    parent[nxt], action_of[nxt], depth[nxt] = pose, forward, n
                    order.append(nxt)
            base = cell * 4
            for action, turned in ((left, base + (d - 1) % 4), (right, base + (d + 1) % 4)):
                if parent[turned] == -2:
                    parent[turned], action_of[turned], depth[turned] = pose, action, n
                    order.append(turned)
        return {"order": order, "parent": parent, "action": action_of, "depth": depth}

    def _nearest_poses(self, arrive: bool) -> dict[Cell, int]:
        """Per cell, the pose of fewest primitives (then the smallest ``(x, y, d)``) that stands on it
        (``arrive``) or faces it."""
        key = "arrive" if arrive else "face"
        table = self._cache.get(key)  # type: ignore[union-attr]
        if table is None:
            table, best_key = {}, {}
            bfs, width = self._cache["bfs"], self.env.width  # type: ignore[index]
            depths = bfs["depth"]
            for pose in bfs["order"]:
                cell, d = pose >> 2, pose & 3
                px, py = cell % width, cell // width
                x, y = (px, py) if arrive else (px + DIR_VEC[d][0], py + DIR_VEC[d][1])
                rank = (depths[pose], px, py, d)
                old = best_key.get((x, y))
                if old is None or rank < old:
                    table[(x, y)], best_key[(x, y)] = pose, rank
            self._cache[key] = table  # type: ignore[index]
        return table

    def _path(self, target: Cell, arrive: bool) -> list[int] | None:
        """Primitives that reach ``target`` (``arrive``) or face it; ``None`` when there is no path."""
        best = self._nearest_poses(arrive).get(target)
        if best is None:
            return None
        bfs = self._cache["bfs"]  # type: ignore[index]
        parents, actions = bfs["parent"], bfs["action"]
        path = []
        node = best
        while parents[node] >= 0:
            path.append(actions[node])
            node = parents[node]
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
