"""Deforum's composable masks: masks combined by an expression, keyed per frame.

Deforum's ``mask_schedule`` (and ``mask.expression`` here) combines masks with set
operations::

    {mask}                  the frame's mask (mask.path, mask.key or mask.luma);
                            Deforum's {video_mask} and {init_mask} are the same mask
    {everywhere}            the whole frame
    [masks/logo.png]        an image file, resized like the input
    a & b   a | b           intersection, union
    a ^ b   a \\ b           one or the other (not both), a without b
    !a      ( ... )         everything but a, grouping

Operators bind as Deforum evaluates them: ``!`` first, then ``&``, ``|``, ``^`` and ``\\``
last. On grey masks they are the fuzzy set operations (minimum, maximum, absolute
difference), which are Deforum's boolean ones on black-and-white masks. Masks that need
a model Deforum downloads (``{human_mask}``, a person segmentation; ``<word>``, CLIPSeg)
are refused when the expression is read.

An expression may be keyed per frame as Deforum writes its schedule,
``0: ("{mask}"), 48: ("{mask} | [logo.png]")``: each frame uses the last key at or before
it (the first key before the first).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from pipeline.errors import RotoscopeError

# The frame's own mask, under its rotoscope name and Deforum's two names for it.
OWN_MASK = ("mask", "video_mask", "init_mask")
EVERYWHERE = "everywhere"
# Deforum names for masks made by a segmentation model rotoscope does not ship.
MODEL_MASKS = ("human_mask",)
# Operators, from the loosest binding to the tightest (Deforum evaluates & first).
BINARY = ("\\", "^", "|", "&")
_KEYED = re.compile(r"\s*(\d+)\s*:\s*\(\s*\"(.*?)\"\s*\)\s*(?:,|$)", re.DOTALL)


class MaskNode(ABC):
    """One node of a parsed expression."""

    @abstractmethod
    def evaluate(self, masks: MaskLookup) -> np.ndarray:
        """The node's mask (H, W uint8) with ``masks`` providing the named and file masks."""

    @abstractmethod
    def files(self) -> Iterator[Path]:
        """The image files the node reads."""

    @abstractmethod
    def uses_own_mask(self) -> bool:
        """Whether the node reads the frame's own mask."""


@dataclass(frozen=True)
class MaskLookup:
    """What an expression reads: the frame's own mask, its size, and image files."""

    own: Callable[[], np.ndarray]
    shape: tuple[int, int]
    file: Callable[[Path], np.ndarray]


@dataclass(frozen=True)
class Named(MaskNode):
    name: str

    def evaluate(self, masks: MaskLookup) -> np.ndarray:
        if self.name == EVERYWHERE:
            return np.full(masks.shape, 255, np.uint8)
        return masks.own()

    def files(self) -> Iterator[Path]:
        return iter(())

    def uses_own_mask(self) -> bool:
        return self.name in OWN_MASK


@dataclass(frozen=True)
class File(MaskNode):
    path: Path

    def evaluate(self, masks: MaskLookup) -> np.ndarray:
        return masks.file(self.path)

    def files(self) -> Iterator[Path]:
        yield self.path

    def uses_own_mask(self) -> bool:
        return False


@dataclass(frozen=True)
class Invert(MaskNode):
    inner: MaskNode

    def evaluate(self, masks: MaskLookup) -> np.ndarray:
        return 255 - self.inner.evaluate(masks)

    def files(self) -> Iterator[Path]:
        return self.inner.files()

    def uses_own_mask(self) -> bool:
        return self.inner.uses_own_mask()


@dataclass(frozen=True)
class Combine(MaskNode):
    operator: str
    left: MaskNode
    right: MaskNode

    def evaluate(self, masks: MaskLookup) -> np.ndarray:
        a, b = self.left.evaluate(masks), self.right.evaluate(masks)
        if self.operator == "&":
            return np.minimum(a, b)
        if self.operator == "|":
            return np.maximum(a, b)
        if self.operator == "^":
            return np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.uint8)
        return np.minimum(a, 255 - b)  # difference

    def files(self) -> Iterator[Path]:
        yield from self.left.files()
        yield from self.right.files()

    def uses_own_mask(self) -> bool:
        return self.left.uses_own_mask() or self.right.uses_own_mask()


class _Parser:
    """Recursive descent over one expression's text (see the module notes)."""

    def __init__(self, text: str, key: str) -> None:
        self.text = text
        self.key = key
        self.position = 0

    def parse(self) -> MaskNode:
        node = self._binary(0)
        self._skip()
        if self.position < len(self.text):
            self._fail(f"unexpected '{self.text[self.position]}'")
        return node

    def _binary(self, level: int) -> MaskNode:
        if level == len(BINARY):
            return self._unary()
        node = self._binary(level + 1)
        while self._peek() == BINARY[level]:
            self.position += 1
            node = Combine(BINARY[level], node, self._binary(level + 1))
        return node

    def _unary(self) -> MaskNode:
        if self._peek() == "!":
            self.position += 1
            return Invert(self._unary())
        return self._atom()

    def _atom(self) -> MaskNode:
        start = self._peek()
        if start == "(":
            self.position += 1
            node = self._binary(0)
            self._expect(")")
            return node
        closing = {"{": "}", "[": "]", "<": ">"}.get(start or "")
        if closing is None:
            self._fail("expected {mask}, {everywhere}, [an image file] or (")
        self.position += 1
        end = self.text.find(closing, self.position)
        if end < 0:
            self._fail(f"'{start}' is never closed")
        content = self.text[self.position : end].strip()
        self.position = end + 1
        if start == "[":
            return File(Path(content).expanduser())
        if start == "<":
            self._refuse(f"<{content}>", "a word mask needs CLIPSeg, which rotoscope does not ship")
        if content in MODEL_MASKS:
            self._refuse(
                f"{{{content}}}", "it needs a person segmentation model rotoscope does not ship"
            )
        if content not in (*OWN_MASK, EVERYWHERE):
            self._fail(f"unknown mask {{{content}}} (known: {{mask}}, {{everywhere}})")
        return Named(content)

    def _peek(self) -> str | None:
        self._skip()
        return self.text[self.position] if self.position < len(self.text) else None

    def _skip(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            self._fail(f"expected '{char}'")
        self.position += 1

    def _fail(self, problem: str) -> NoReturn:
        raise RotoscopeError(
            f"{self.key} '{self.text}': {problem} at position {self.position + 1}",
            "combine {mask}, {everywhere} and [image files] with & | ^ \\ ! and parentheses",
        )

    def _refuse(self, mask: str, why: str) -> NoReturn:
        raise RotoscopeError(
            f"{self.key} '{self.text}' uses {mask}: {why}",
            "give that mask as a matte video or image folder in mask.path instead",
        )


def parse_mask_expression(text: str, key: str = "mask.expression") -> MaskNode:
    """One expression, parsed; a RotoscopeError naming ``key`` and the position if not."""
    if not text.strip():
        raise RotoscopeError(f"{key} is empty", "for example {mask} | [logo.png]")
    return _Parser(text, key).parse()


@dataclass(frozen=True)
class KeyedMasks:
    """An expression per keyframe; a frame uses the last key at or before it."""

    keys: tuple[tuple[int, MaskNode], ...]

    def at(self, index: int) -> MaskNode:
        current = self.keys[0][1]
        for frame, node in self.keys:
            if frame <= index:
                current = node
        return current

    def files(self) -> list[Path]:
        return list(dict.fromkeys(path for _, node in self.keys for path in node.files()))

    def uses_own_mask(self) -> bool:
        return any(node.uses_own_mask() for _, node in self.keys)


def parse_keyed_masks(text: str, key: str = "mask.expression") -> KeyedMasks:
    """``text`` as one expression for every frame, or keyed per frame the way Deforum
    writes its mask schedule (``0: ("{mask}"), 30: ("...")``)."""
    if not re.match(r"\s*\d+\s*:", text):
        return KeyedMasks(((0, parse_mask_expression(text, key)),))
    entries, position = [], 0
    while position < len(text.rstrip()):
        match = _KEYED.match(text, position)
        if match is None:
            raise RotoscopeError(
                f"{key} '{text}' is not a keyed expression at position {position + 1}",
                'write frame: ("expression") entries separated by commas, as Deforum does',
            )
        entries.append((int(match.group(1)), parse_mask_expression(match.group(2), key)))
        position = match.end()
    return KeyedMasks(tuple(sorted(entries, key=lambda entry: entry[0])))
