"""A1111's prompt editing and alternation: which text a prompt has at each denoising step.

Users paste prompts from A1111, and these change the picture, so the same text must do the
same here:

- ``[a:b:when]`` is ``a`` up to step ``when``, then ``b``; ``[a::when]`` drops ``a`` after
  ``when``; ``[b:when]`` and ``[:b:when]`` add ``b`` after ``when``. ``when`` with a decimal
  point (``0.5``, ``.25``, ``1.0``) is a fraction of the steps, without one (``8``) a step
  number (A1111's current rule, so ``[a:b:1]`` switches after step 1 and ``[a:b:1.0]`` never).
- ``[a|b|c]`` cycles through its options, one per step; an option may be empty (``[fe|]male``).
- Constructs nest, and their text keeps any attention syntax: ``[(cat:1.2):dog:0.5]``.
- Steps are counted as A1111 counts them: ``prompt_schedule`` gives (last step, text) pairs
  and the text for step ``i`` (from 0) is the first pair whose last step is ``>= i``. So
  ``[a:b:5]`` over 10 steps uses ``a`` for steps 0 to 5 and ``b`` for 6 to 9.
- A prompt A1111's grammar does not parse (a ``|`` outside square brackets, a backslash at
  the very end) is used unchanged at every step, as A1111 does; a bracket that is not a
  construct is plain text (``[a:b:c]`` with ``c`` not a number).

Which steps a schedule is built over is a setting (``prompt_editing_steps``,
:func:`schedule_steps`): by default the denoising steps that actually run (img2img at
strength 0.5 with 20 steps runs 10), so a fraction means a fraction of the denoising that
happens; or, as A1111's img2img counts, all ``steps``, of which only the first are
reached. Either way the steps that run are counted from 0.

``AND`` (A1111's composable prompts, each part weighed in its own guidance pass) is not
implemented: :func:`check_composable` refuses it with one line rather than reading it as
text. Pure text: the plan checks prompts with it, the renderer schedules them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pipeline.config.schema import PromptEditingSteps
from pipeline.errors import RotoscopeError

# ":" whitespace? NUMBER whitespace? "]": the end of a prompt-editing construct.
_WHEN = re.compile(r":\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
_PLAIN_STOP = frozenset("\\[]():|")
_STRAY = frozenset("]):")
_AND = re.compile(r"\bAND\b")


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Scheduled:
    before: tuple[_Node, ...]
    after: tuple[_Node, ...]
    when: str  # as written: a decimal point makes it a fraction of the steps


@dataclass(frozen=True)
class _Alternate:
    options: tuple[tuple[_Node, ...], ...]


_Node = _Text | _Scheduled | _Alternate
_Parsed = tuple[list[_Node], int]


class _Parser:
    """Recursive descent over A1111's prompt grammar.

    At the top level a bracket that does not open a valid construct is plain text;
    inside a construct it makes the construct invalid, so its opening bracket becomes
    text instead (A1111's grammar allows stray brackets and colons only at the top).
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def parse(self) -> list[_Node] | None:
        """The prompt's nodes, or None when A1111 would not parse it."""
        text, position = self.text, 0
        nodes: list[_Node] = []
        while position < len(text):
            char = text[position]
            parsed: _Parsed | None = None
            if char == "|":
                return None
            if char == "[":
                parsed = self._square(position)
            elif char == "(":
                parsed = self._round(position)
            elif char == "\\":
                parsed = self._escape(position)
                if parsed is None:
                    return None
            elif char not in _STRAY:
                parsed = self._plain(position)
            if parsed is None:  # a stray bracket or colon
                nodes.append(_Text(char))
                position += 1
            else:
                nodes += parsed[0]
                position = parsed[1]
        return nodes

    def _prompt(self, position: int, closers: str) -> _Parsed | None:
        """Nodes up to (not including) the first character of ``closers`` at this level."""
        text = self.text
        nodes: list[_Node] = []
        while position < len(text):
            char = text[position]
            if char in closers:
                return nodes, position
            if char == "[":
                parsed = self._square(position)
            elif char == "(":
                parsed = self._round(position)
            elif char == "\\":
                parsed = self._escape(position)
            elif char in _PLAIN_STOP:
                return None
            else:
                parsed = self._plain(position)
            if parsed is None:
                return None
            nodes += parsed[0]
            position = parsed[1]
        return None  # the text ended inside the construct

    def _plain(self, position: int) -> _Parsed:
        end = position
        while end < len(self.text) and self.text[end] not in _PLAIN_STOP:
            end += 1
        return [_Text(self.text[position:end])], end

    def _escape(self, position: int) -> _Parsed | None:
        """A backslash and the character it escapes, kept for the attention parser."""
        if position + 1 >= len(self.text):
            return None
        return [_Text(self.text[position : position + 2])], position + 2

    def _round(self, position: int) -> _Parsed | None:
        """``(prompt)`` or ``(prompt:prompt)``: attention syntax, kept as text."""
        first = self._prompt(position + 1, ":)")
        if first is None:
            return None
        nodes, end = first
        if self.text[end] == ")":
            return [_Text("("), *nodes, _Text(")")], end + 1
        second = self._prompt(end + 1, ")")
        if second is None:
            return None
        weight, close = second
        return [_Text("("), *nodes, _Text(":"), *weight, _Text(")")], close + 1

    def _square(self, position: int) -> _Parsed | None:
        """``[prompt]`` (attention), ``[a|b]``, ``[b:when]`` or ``[a:b:when]``."""
        first = self._prompt(position + 1, ":|]")
        if first is None:
            return None
        nodes, end = first
        char = self.text[end]
        if char == "]":
            return [_Text("["), *nodes, _Text("]")], end + 1
        if char == "|":
            options = [tuple(nodes)]
            while self.text[end] == "|":
                option = self._prompt(end + 1, "|]")
                if option is None:
                    return None
                nodes, end = option
                options.append(tuple(nodes))
            return [_Alternate(tuple(options))], end + 1
        when = _WHEN.match(self.text, end)
        if when:
            return [_Scheduled((), tuple(nodes), when.group(1))], when.end()
        second = self._prompt(end + 1, ":]")
        if second is None:
            return None
        after, end = second
        when = _WHEN.match(self.text, end)
        if not when:
            return None
        return [_Scheduled(tuple(nodes), tuple(after), when.group(1))], when.end()


def _switch_step(when: str, steps: int) -> int:
    """A1111's step for ``when``: a fraction of ``steps`` with a decimal point, else a step."""
    value = float(when)
    if "." in when:
        value *= steps
    return min(steps, int(value))


def _walk(nodes: tuple[_Node, ...] | list[_Node]) -> list[_Node]:
    """Every node, depth first."""
    found: list[_Node] = []
    for node in nodes:
        found.append(node)
        if isinstance(node, _Scheduled):
            found += _walk(node.before) + _walk(node.after)
        elif isinstance(node, _Alternate):
            for option in node.options:
                found += _walk(option)
    return found


def _text_at(nodes: tuple[_Node, ...] | list[_Node], step: int, steps: int) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, _Text):
            parts.append(node.text)
        elif isinstance(node, _Scheduled):
            chosen = node.before if step <= _switch_step(node.when, steps) else node.after
            parts.append(_text_at(chosen, step, steps))
        else:
            parts.append(_text_at(node.options[(step - 1) % len(node.options)], step, steps))
    return "".join(parts)


@lru_cache(maxsize=1024)  # asked for every frame's texts, which repeat
def has_prompt_editing(text: str) -> bool:
    """Whether ``text`` changes between steps (holds ``[a:b:when]`` or ``[a|b]``)."""
    nodes = _Parser(text).parse()
    return nodes is not None and any(not isinstance(n, _Text) for n in _walk(nodes))


def prompt_schedule(text: str, steps: int) -> list[tuple[int, str]]:
    """``text`` over ``steps`` steps as A1111's (last step, text) pairs, in step order.

    The text for step ``i`` (from 0) is that of the first pair whose last step is >= ``i``.
    """
    nodes = _Parser(text).parse()
    if nodes is None:
        return [(steps, text)]
    ends = {steps}
    for node in _walk(nodes):
        if isinstance(node, _Scheduled):
            step = _switch_step(node.when, steps)
            if step >= 1:
                ends.add(step)
        elif isinstance(node, _Alternate):
            ends.update(range(1, steps + 1))
    return [(end, _text_at(nodes, end, steps)) for end in sorted(ends)]


def schedule_steps(counting: str | None, steps: int, steps_run: int, order: int = 1) -> int:
    """The number of steps a prompt's schedule is built over, for a row whose
    ``prompt_editing_steps`` is ``counting`` (None: rotoscope's default).

    By default, the ``steps_run`` denoising steps that actually run. ``a1111`` counts as
    A1111's img2img does: it builds the schedule over all ``steps`` (times ``order``, the
    model calls per step: 2 for second-order samplers, as A1111's ``total_steps``), and its
    step counter starts at 0 on the first step it runs, so a switch beyond the steps that
    run is never reached.
    """
    if counting == PromptEditingSteps.a1111.value:
        return steps * order
    return steps_run


def text_at_step(schedule: list[tuple[int, str]], step: int) -> str:
    """The text a :func:`prompt_schedule` gives step ``step`` (counted from 0)."""
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[-1][1]


def check_composable(text: str, where: str) -> None:
    """Refuse A1111's ``AND`` (composable prompts), which rotoscope does not implement."""
    if _AND.search(text):
        raise RotoscopeError(
            f"{where}: prompt '{text.strip()[:60]}' uses AND (A1111's composable prompts), "
            "which rotoscope does not implement",
            "write 'and' in lowercase for the word, or morph between prompts with keyframes",
        )
