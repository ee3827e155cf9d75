"""Slurm's compact host lists (``SLURM_JOB_NODELIST``): ``gpu[01-03,07],cpu4`` -> host names."""

from __future__ import annotations


class NodeListError(ValueError):
    """A host list that is not in Slurm's syntax."""


def parse_nodelist(text: str) -> list[str]:
    """Expand a Slurm host list: ``"n[1-3],m[07,09]"`` -> ``["n1", "n2", "n3", "m07", "m09"]``.

    Ranges keep the zero padding of their first number; several bracket groups in one name
    combine (``r[1-2]n[1-2]`` -> ``r1n1, r1n2, r2n1, r2n2``).

    Raises
    ------
    NodeListError
        On an unclosed bracket or a range that is not numbers (``n[1-,4]``).
    """
    names: list[str] = []
    position = 0
    while position < len(text):
        names_here = [""]
        while position < len(text) and text[position] != ",":
            char = text[position]
            if char == "[":
                end = text.find("]", position)
                if end < 0:
                    raise NodeListError(f"unclosed '[' in the host list {text!r}")
                numbers = _expand_ranges(text[position + 1 : end], text)
                names_here = [name + number for name in names_here for number in numbers]
                position = end + 1
            elif char == "]":
                raise NodeListError(f"unmatched ']' in the host list {text!r}")
            else:
                names_here = [name + char for name in names_here]
                position += 1
        names.extend(name for name in names_here if name)
        position += 1  # the comma
    return names


def _expand_ranges(ranges: str, text: str) -> list[str]:
    numbers: list[str] = []
    for part in ranges.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise NodeListError(f"{part!r} is not a number or range in the host list {text!r}")
        if not dash:
            numbers.append(low)
            continue
        if int(high) < int(low):
            raise NodeListError(f"the range {part!r} of the host list {text!r} is empty")
        numbers.extend(f"{number:0{len(low)}d}" for number in range(int(low), int(high) + 1))
    return numbers
