"""What a client needs from the plugin's size messages, judged by ``glm_rules``.

The plugin authors these messages, so no test compares them with the plugin's own message
functions: a check here lists what a message fails to tell the user (empty: it tells all).
The phrases looked for are the documented ones (README "Troubleshooting", docs/live.md).
"""

from __future__ import annotations

import re

import glm_rules

NEAREST = re.compile(r"Nearest valid sizes: ((?:\d+x\d+)(?:, \d+x\d+)*)\.")
SIZE = re.compile(r"\b(\d+)x(\d+)\b")


def listed_sizes(message: str) -> list[tuple[int, int]] | None:
    """(height, width) of each ``WxH`` after "Nearest valid sizes:" (None: no such list)."""
    found = NEAREST.search(message)
    if not found:
        return None
    return [(int(h), int(w)) for w, h in SIZE.findall(found.group(1))]


def states_the_rule(message: str) -> bool:
    """The message says which sides are valid: multiples of 32 between 256 and 2048."""
    rule = (f"multiples of {glm_rules.FACTOR}", str(glm_rules.MIN_SIDE), str(glm_rules.MAX_SIDE))
    return all(part in message for part in rule)


def rejection_problems(message: str, height: int, width: int) -> list[str]:
    """What a rejection of ``width``x``height`` fails to tell a client: the size it asked
    for, the rule, and the nearest valid sizes (valid by the rule, nearest by arithmetic)."""
    problems = []
    if not re.search(rf"\b{width}x{height}\b", message):
        problems.append(f"does not name the requested size {width}x{height}")
    if not states_the_rule(message):
        problems.append("does not state the rule (multiples of 32 between 256 and 2048)")
    listed = listed_sizes(message)
    if listed is None:
        return [*problems, "lists no nearest valid sizes"]
    invalid = [f"{w}x{h}" for h, w in listed if not glm_rules.is_valid_size(h, w)]
    if invalid:
        problems.append(f"lists sizes GLM-Image cannot render exactly: {invalid}")
    expected = glm_rules.nearest_sizes(height, width)
    if listed != expected:
        problems.append(
            "lists " + ", ".join(f"{w}x{h}" for h, w in listed) + "; the nearest valid sizes, "
            "closest first, are " + ", ".join(f"{w}x{h}" for h, w in expected)
        )
    return problems


def rejection_logged(text: str, height: int, width: int) -> bool:
    """Some line of ``text`` (e.g. worker logs) is a rejection of the size telling it all."""
    return any(
        not rejection_problems(line, height, width)
        for line in text.splitlines()
        if f"{width}x{height}" in line
    )


def malformed_problems(message: str, size: str) -> list[str]:
    """What a refusal of the malformed ``size`` fails to tell a client: the string it sent,
    the form it needs, and only sizes GLM-Image renders as examples."""
    problems = []
    if f"'{size}'" not in message and f'"{size}"' not in message:
        problems.append(f"does not quote the size sent, {size!r}")
    if "WIDTHxHEIGHT" not in message:
        problems.append("does not name the form WIDTHxHEIGHT")
    if not states_the_rule(message):
        problems.append("does not state the rule (multiples of 32 between 256 and 2048)")
    examples = [(int(h), int(w)) for w, h in SIZE.findall(message)]
    if not examples:
        problems.append("gives no example size")
    invalid = [f"{w}x{h}" for h, w in examples if not glm_rules.is_valid_size(h, w)]
    if invalid:
        problems.append(f"gives examples GLM-Image cannot render exactly: {invalid}")
    return problems


def malformed_logged(text: str, size: str) -> bool:
    """Some line of ``text`` is a refusal of the malformed ``size`` telling it all."""
    return any(not malformed_problems(line, size) for line in text.splitlines() if size in line)
