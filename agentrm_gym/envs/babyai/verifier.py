"""Fixes of minigrid's mission verifier for BabyAI's strict ordered missions, and instruction-tree helpers.

minigrid 3.2's ``BeforeInstr``/``AfterInstr`` judge the second clause of "a, then b" with the very
action that completed the first one, which fails strict door-order missions (OpenDoorsOrderN4Debug)
on the toggle that opens the first door. :func:`fix_strict_sequences` swaps in corrected classes for
such sequences. :func:`relink_instrs` points an instruction tree restored from a snapshot back at the
live env, and :func:`leaf_instrs` lists a mission's clauses (the env's subgoals are per clause).
"""

from __future__ import annotations

from typing import Any

from minigrid.envs.babyai.core.verifier import AfterInstr, BeforeInstr, SeqInstr


def relink_instrs(instr: Any, env: Any) -> None:
    """Point an instruction tree (restored from a snapshot) back at the live minigrid env."""
    instr.env = env
    if isinstance(instr, SeqInstr):
        relink_instrs(instr.instr_a, env)
        relink_instrs(instr.instr_b, env)


def _verify_in_order(instr: Any, action: Any, first: str, second: str) -> str:
    """Judge ``instr_<first>`` until it succeeds, then ``instr_<second>`` from the next action on.

    Under ``strict``, completing ``second`` while ``first`` is pending fails the mission; the action that
    completes ``first`` is not judged against ``second`` (see :func:`fix_strict_sequences`).
    """
    if getattr(instr, f"{first}_done") != "success":
        status = getattr(instr, f"instr_{first}").verify(action)
        setattr(instr, f"{first}_done", status)
        if status == "failure":
            return "failure"
        if status == "success":
            return "continue"
        if instr.strict and getattr(instr, f"instr_{second}").verify(action) == "success":
            return "failure"
        return "continue"
    status = getattr(instr, f"instr_{second}").verify(action)
    setattr(instr, f"{second}_done", status)
    return status if status in ("success", "failure") else "continue"


class _StrictBeforeInstr(BeforeInstr):
    """``a, then b`` without judging b on the action that completed a (see :func:`fix_strict_sequences`)."""

    def verify(self, action: Any) -> str:
        return _verify_in_order(self, action, "a", "b")


class _StrictAfterInstr(AfterInstr):
    """``a after you b`` without judging a on the action that completed b (see :func:`fix_strict_sequences`)."""

    def verify(self, action: Any) -> str:
        return _verify_in_order(self, action, "b", "a")


def fix_strict_sequences(instr: Any) -> None:
    """Work around a minigrid 3.2 verifier bug that makes strict door-order missions unsolvable.

    ``BeforeInstr``/``AfterInstr`` re-verify the second clause with the very action that completed the
    first one; with strict ``OpenInstr`` clauses (OpenDoorsOrderN4Debug) the toggle that opened the first
    door is then judged as opening the *wrong* door for the second clause, and the episode fails. Only
    sequences whose second clause is strict get the corrected class.
    """
    if isinstance(instr, SeqInstr):
        second = instr.instr_b if isinstance(instr, BeforeInstr) else instr.instr_a
        if getattr(second, "strict", False):
            if type(instr) is BeforeInstr:
                instr.__class__ = _StrictBeforeInstr
            elif type(instr) is AfterInstr:
                instr.__class__ = _StrictAfterInstr
        fix_strict_sequences(instr.instr_a)
        fix_strict_sequences(instr.instr_b)


def leaf_instrs(instr: Any) -> list[Any]:
    """The clauses of an instruction tree (its non-sequence leaves), left to right."""
    if isinstance(instr, SeqInstr):
        return leaf_instrs(instr.instr_a) + leaf_instrs(instr.instr_b)
    return [instr]
