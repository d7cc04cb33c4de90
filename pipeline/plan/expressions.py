"""The arithmetic inside schedule values and keys: tokenizer, parser, AST and evaluator.

Deforum hands schedule values to ``numexpr`` after textual edits, and other tools use
Python's ``eval``. Both are unsafe on pasted text and brittle: replacing ``t`` in the
text corrupts ``sqrt``, and a comma inside ``clamp(t, 0, 1)`` breaks a splitter that
cuts on commas. Here the text is tokenized once, parsed by recursive descent into a small
AST, and evaluated by walking that AST with numpy; no ``eval``, ``exec`` or ``compile``.

Grammar (lowest precedence first; Python's rules, so pasted Deforum maths means the same):

- comparison: ``a < b``, ``<= > >= == !=``, yielding 1.0 or 0.0; chains like
  ``0 < t < 10`` mean ``0 < t and t < 10`` as in Python;
- sum: ``+ -``; product: ``* / %`` (``%`` takes the sign of the divisor, as in Python);
- unary ``+ -``; power ``**``, right-associative and binding tighter than a unary minus
  on its left: ``-2**2 == -4`` and ``2**-1 == 0.5``;
- atoms: numbers (``3``, ``.5``, ``1e-3``), seconds (``2.5s`` is ``2.5 * fps`` frames),
  parentheses, variables ``t`` (frame index), ``max_f`` (last frame index), ``s``
  (base seed), ``fps``, constants ``pi`` and ``e``, and calls of :data:`FUNCTIONS`.

Evaluation is vectorised: ``t`` may be an array of frames. Every element carries a
"bad" flag, set where an operation turns finite inputs into inf or NaN (``sqrt(-1)``,
``log(0)``, ``1/0``, overflow), so that ``where(t > 0, 1/t, 0)`` is fine at ``t = 0``
(the unused branch is discarded, as a user reading it expects) while ``1/t`` alone is an
error. A failing element is then re-evaluated alone, strictly, to name the exact
operation and its column.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NoReturn

import numpy as np

from pipeline.errors import RotoscopeError

VARIABLES: dict[str, str] = {
    "t": "frame index",
    "max_f": "last frame index",
    "s": "base seed",
    "fps": "frames per second",
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
# Parsing and evaluating recurse, about 7 and 2 Python frames per level; these bounds keep
# a pathological text far from Python's recursion limit (real schedules nest a few levels).
MAX_NESTING = 50  # parentheses, calls, unary signs and exponents inside one another
MAX_HEIGHT = 200  # levels of the parsed tree (long sums such as 1+1+...+1 are tall)
EXCERPT_WIDTH = 80  # longer lines are shown as a window around the error position

Number = float | np.ndarray
Flags = bool | np.ndarray


# ----------------------------------------------------------------------------- errors


def point_at(source: str, position: int) -> tuple[str, str, str]:
    """``(label, excerpt, caret)`` showing ``position`` of ``source`` to a user.

    The label is ``column N`` (``line L, column N`` for multi-line text, such as a
    schedule written over several lines of a file); the excerpt is that line, cut to a
    window around the position when long, and the caret line puts ``^`` under it.
    """
    line_start = source.rfind("\n", 0, position) + 1
    line_end = source.find("\n", position)
    line = source[line_start : len(source) if line_end < 0 else line_end].replace("\t", " ")
    offset = position - line_start
    label = f"column {offset + 1}"
    if "\n" in source.strip():
        line_number = source.count("\n", 0, position) + 1
        label = f"line {line_number}, {label}"
    start = max(0, min(offset - EXCERPT_WIDTH // 2, len(line) - EXCERPT_WIDTH))
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + EXCERPT_WIDTH < len(line) else ""
    excerpt = prefix + line[start : start + EXCERPT_WIDTH] + suffix
    caret = " " * (len(prefix) + offset - start) + "^"
    return label, excerpt, caret


def render_error(head: str, source: str | None, position: int | None, allowed: str | None) -> str:
    """The multi-line report every schedule and expression error prints.

    ``head at column N``, then the offending text and a caret under the position, then
    what would have been accepted there, so a user can fix the text without the docs.
    """
    lines = [head]
    if source is not None and position is not None:
        label, excerpt, caret = point_at(source, position)
        lines = [f"{head} at {label}", f"    {excerpt}", f"    {caret}"]
    if allowed:
        lines.append(allowed)
    return "\n".join(lines)


class ExpressionError(RotoscopeError):
    """A problem in expression text, at a position of ``source``.

    ``at`` holds the variable values of the failing evaluation (``t`` names the frame)
    or is empty for a syntax error; the schedule layer rewords both for its report.
    """

    def __init__(
        self,
        problem: str,
        source: str,
        position: int,
        allowed: str | None = None,
        at: Mapping[str, float] | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.position = position
        self.allowed = allowed
        self.at = dict(at or {})
        head = f"{problem} (t={self.at['t']:g})" if "t" in self.at else problem
        super().__init__(render_error(head, source, position, allowed))


# ---------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    """One lexical item; ``kind`` is number, seconds, name, op or end."""

    kind: str
    text: str
    position: int
    value: float = 0.0

    @property
    def end(self) -> int:
        return self.position + len(self.text)

    def describe(self) -> str:
        return "the end of the text" if self.kind == "end" else f"'{self.text}'"


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?P<unit>s(?![A-Za-z0-9_]))?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|<=|>=|==|!=|[-+*/%<>(),:"'])
    """,
    re.VERBOSE,
)
_CHARACTER_HINTS = {
    "^": "'^' is not an operator here; write powers as x**2",
    "=": "'=' is not an operator; compare with ==",
    "!": "'!' is not an operator; compare with !=",
}


def tokenize(source: str) -> list[Token]:
    """All tokens of ``source``, ending with an ``end`` token; ExpressionError on a stray
    character or a number too large for a float."""
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            char = source[position]
            problem = _CHARACTER_HINTS.get(char, f"unexpected character '{char}'")
            raise ExpressionError(problem, source, position, _SYNTAX_HELP)
        if match.group("number") is not None:
            value = float(match.group("number"))
            if not math.isfinite(value):
                raise ExpressionError("number is too large", source, position)
            kind = "seconds" if match.group("unit") else "number"
            tokens.append(Token(kind, match.group(0), position, value))
        elif match.group("space") is None:
            kind = "name" if match.group("name") is not None else "op"
            tokens.append(Token(kind, match.group(0), position))
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


class TokenStream:
    """A cursor over the tokens of one text, shared by the expression parser and the
    schedule parser so that commas inside function calls are never mistaken for the
    commas between keyframes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_op(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text in texts

    def previous_end(self) -> int:
        """Where the last consumed token ends (the start of the text before any)."""
        return self.tokens[self.index - 1].end if self.index else 0

    def error(self, problem: str, position: int, allowed: str | None = None) -> ExpressionError:
        return ExpressionError(problem, self.source, position, allowed)


# ------------------------------------------------------------------------- functions


def _round_half_away(x: Number) -> Number:
    """Round to the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3): what a
    user expects of ``round``, unlike numpy's and Python's half-to-even."""
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) >= 0.5, whole + np.sign(x), whole) + 0.0


def round_half_away_from_zero(x: float) -> int:
    """The integer nearest ``x``, halves away from zero; keys are rounded with it."""
    return int(_round_half_away(x))


def _outside_unit(name: str) -> Callable[[float], str | None]:
    def domain(x: float) -> str | None:
        return f"{name}({_fmt(x)}) is undefined: {name} needs -1 <= x <= 1" if abs(x) > 1 else None

    return domain


def _log_domain(name: str) -> Callable[[float], str | None]:
    def domain(x: float) -> str | None:
        return f"{name}({_fmt(x)}) is undefined: {name} needs x > 0" if x <= 0 else None

    return domain


def _sqrt_domain(x: float) -> str | None:
    return f"sqrt({_fmt(x)}) is undefined: sqrt of a negative number" if x < 0 else None


def _clamp(x: Number, lo: Number, hi: Number) -> Number:
    return np.minimum(np.maximum(x, lo), hi)


def _minimum(*xs: Number) -> Number:
    return np.minimum.reduce(np.broadcast_arrays(*xs))


def _maximum(*xs: Number) -> Number:
    return np.maximum.reduce(np.broadcast_arrays(*xs))


@dataclass(frozen=True)
class Function:
    """A callable name: its signature for messages, arity, and numpy implementation.

    ``domain`` explains, from scalar arguments, why a result is not finite ("sqrt of a
    negative number"); without one a non-finite result is reported as an overflow.
    """

    signature: str
    min_args: int
    max_args: int | None
    apply: Callable[..., Number]
    domain: Callable[..., str | None] | None = None


FUNCTIONS: dict[str, Function] = {
    "sin": Function("sin(x)", 1, 1, np.sin),
    "cos": Function("cos(x)", 1, 1, np.cos),
    "tan": Function("tan(x)", 1, 1, np.tan),
    "asin": Function("asin(x)", 1, 1, np.arcsin, _outside_unit("asin")),
    "acos": Function("acos(x)", 1, 1, np.arccos, _outside_unit("acos")),
    "atan": Function("atan(x)", 1, 1, np.arctan),
    "atan2": Function("atan2(y, x)", 2, 2, np.arctan2),
    "sqrt": Function("sqrt(x)", 1, 1, np.sqrt, _sqrt_domain),
    "abs": Function("abs(x)", 1, 1, np.abs),
    "exp": Function("exp(x)", 1, 1, np.exp),
    "log": Function("log(x)", 1, 1, np.log, _log_domain("log")),
    "log10": Function("log10(x)", 1, 1, np.log10, _log_domain("log10")),
    "floor": Function("floor(x)", 1, 1, np.floor),
    "ceil": Function("ceil(x)", 1, 1, np.ceil),
    "round": Function("round(x)", 1, 1, _round_half_away),
    "min": Function("min(a, b, ...)", 2, None, _minimum),
    "max": Function("max(a, b, ...)", 2, None, _maximum),
    "clamp": Function("clamp(x, lo, hi)", 3, 3, _clamp),
    "where": Function("where(cond, a, b)", 3, 3, np.where),  # lazy: see Call.evaluate
}
# numexpr's spellings, which Deforum users paste.
FUNCTIONS |= {
    "arcsin": FUNCTIONS["asin"],
    "arccos": FUNCTIONS["acos"],
    "arctan": FUNCTIONS["atan"],
    "arctan2": FUNCTIONS["atan2"],
}

_SYNTAX_HELP = (
    "allowed: numbers, t max_f s fps, pi e, + - * / % **, < <= > >= == !=, "
    "parentheses and function calls like sqrt(t)"
)
_NAMES_HELP = (
    "known names: t (frame index), max_f (last frame index), s (base seed), "
    "fps (frames per second), pi, e"
)
_FUNCTIONS_HELP = "known functions: " + ", ".join(
    sorted({function.signature for function in FUNCTIONS.values()})
)


def _fmt(x: Number) -> str:
    return f"{float(x):g}"


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ------------------------------------------------------------------------------- AST


class _Failure(Exception):
    """Raised by a strict evaluation at the first operation that produced inf or NaN."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(problem)
        self.position = position
        self.problem = problem


Env = Mapping[str, np.ndarray]


def _checked(
    result: Number, bad_in: Flags, position: int, strict: bool, explain: Callable[[], str]
) -> tuple[Number, Flags]:
    """Flag elements where this operation made inf or NaN out of good inputs."""
    new_bad = ~np.isfinite(result) & ~np.asarray(bad_in)
    if strict and np.any(new_bad):
        raise _Failure(position, explain())
    return result, bad_in | new_bad


class Node:
    """An AST node; ``position`` is where errors about it point in the source."""

    position: int

    def children(self) -> tuple[Node, ...]:
        return ()

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        """``(values, bad)``. ``strict`` (one element at a time) raises _Failure at the
        first bad operation and evaluates only the chosen branch of ``where``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Num(Node):
    value: float
    position: int

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        return np.float64(self.value), False


@dataclass(frozen=True)
class Var(Node):
    name: str
    position: int

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        return _checked(
            env[self.name], False, self.position, strict, lambda: f"{self.name} is not finite"
        )


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node
    position: int

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        value, bad = self.operand.evaluate(env, strict)
        return (-value if self.op == "-" else value), bad


_BINARY: dict[str, Callable[[Number, Number], Number]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.mod,
    "**": np.power,
}


def _explain_binary(op: str, left_value: Number, right_value: Number) -> str:
    left, right = float(left_value), float(right_value)
    if op in ("/", "%") and right == 0:
        return "division by zero" if op == "/" else "modulo by zero"
    if op == "**" and left < 0 and right != math.floor(right):
        return (
            f"{_fmt(left)} ** {_fmt(right)} is undefined: a negative number to a fractional power"
        )
    if op == "**" and left == 0 and right < 0:
        return f"0 ** {_fmt(right)} is undefined: zero to a negative power"
    return f"{_fmt(left)} {op} {_fmt(right)} is too large"


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node
    position: int

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        left, left_bad = self.left.evaluate(env, strict)
        right, right_bad = self.right.evaluate(env, strict)
        return _checked(
            _BINARY[self.op](left, right),
            left_bad | right_bad,
            self.position,
            strict,
            lambda: _explain_binary(self.op, left, right),
        )


_COMPARE: dict[str, Callable[[Number, Number], Number]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


@dataclass(frozen=True)
class Compare(Node):
    """A comparison chain ``a < b <= c``: 1.0 where every link holds, else 0.0."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]
    position: int

    def children(self) -> tuple[Node, ...]:
        return self.operands

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        evaluated = [operand.evaluate(env, strict) for operand in self.operands]
        holds: Number = np.float64(1.0)
        bad: Flags = False
        for op, (left, left_bad), (right, right_bad) in zip(
            self.ops, evaluated, evaluated[1:], strict=False
        ):
            holds = holds * _COMPARE[op](left, right)
            bad = bad | left_bad | right_bad
        return holds, bad


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]
    position: int

    def children(self) -> tuple[Node, ...]:
        return self.args

    def evaluate(self, env: Env, strict: bool) -> tuple[Number, Flags]:
        if self.name == "where" and strict:
            condition, _ = self.args[0].evaluate(env, strict)
            return self.args[1 if condition != 0 else 2].evaluate(env, strict)
        evaluated = [arg.evaluate(env, strict) for arg in self.args]
        values = [value for value, _ in evaluated]
        if self.name == "where":
            (condition, condition_bad), (_, a_bad), (_, b_bad) = evaluated
            chosen = condition != 0
            choose = FUNCTIONS["where"].apply
            bad = condition_bad | np.asarray(choose(chosen, a_bad, b_bad), dtype=bool)
            return choose(chosen, values[1], values[2]), bad
        function = FUNCTIONS[self.name]
        bad_in: Flags = False
        for _, bad in evaluated:
            bad_in = bad_in | bad
        return _checked(
            function.apply(*values), bad_in, self.position, strict, lambda: self._explain(values)
        )

    def _explain(self, values: list[Number]) -> str:
        domain = FUNCTIONS[self.name].domain
        reason = domain(*values) if domain else None
        return reason or f"{self.name}({', '.join(map(_fmt, values))}) is too large"


def _walk(root: Node) -> Iterator[Node]:
    """Every node, without recursion (the tree may be deep before it is checked)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def _height(root: Node) -> int:
    height = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        height = max(height, depth)
        stack.extend((child, depth + 1) for child in node.children())
    return height


# ------------------------------------------------------------------------ expression


@dataclass(frozen=True)
class Expression:
    """A parsed expression; ``source[start:end]`` is its text.

    ``source`` is the whole text it was parsed from (a whole schedule, when it is a
    keyframe's value), so error carets point into what the user actually wrote.
    """

    source: str
    root: Node
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]

    @cached_property
    def variables(self) -> frozenset[str]:
        """The variable names it reads (``fps`` included when it uses seconds)."""
        return frozenset(node.name for node in _walk(self.root) if isinstance(node, Var))

    def position_of(self, name: str) -> int:
        """Where variable ``name`` is first used (for errors about it)."""
        return min(n.position for n in _walk(self.root) if isinstance(n, Var) and n.name == name)

    def evaluate(self, variables: Mapping[str, float | np.ndarray]) -> float | np.ndarray:
        """Its value: a float, or a float64 array when a variable (usually ``t``) is one.

        Raises ExpressionError naming the operation, its column and the variable values
        (so the frame) where the result first stops being a finite number, or for a
        variable it uses that ``variables`` lacks.
        """
        missing = sorted(self.variables - variables.keys())
        if missing:
            name = missing[0]
            raise ExpressionError(
                f"{name} ({VARIABLES[name]}) cannot be used here",
                self.source,
                self.position_of(name),
                "available here: " + (", ".join(sorted(variables)) or "numbers only"),
            )
        env = {name: np.asarray(variables[name], dtype=np.float64) for name in self.variables}
        shape = np.broadcast_shapes(*(array.shape for array in env.values()))
        with np.errstate(all="ignore"):
            value, bad = self.root.evaluate(env, strict=False)
        if np.any(bad):
            index = np.unravel_index(int(np.argmax(np.broadcast_to(bad, shape))), shape)
            self._explain_failure(
                {name: float(np.broadcast_to(array, shape)[index]) for name, array in env.items()}
            )
        result = np.array(np.broadcast_to(value, shape), dtype=np.float64)
        return float(result) if result.ndim == 0 else result

    def _explain_failure(self, point: dict[str, float]) -> NoReturn:
        """Re-run strictly at one failing point and raise the precise error.

        The strict run uses the same numpy operations, so it fails where the vectorised
        one flagged; the final raise only keeps this function from ever returning.
        """
        env = {name: np.asarray(value) for name, value in point.items()}
        with np.errstate(all="ignore"):
            try:
                self.root.evaluate(env, strict=True)
            except _Failure as failure:
                raise ExpressionError(
                    failure.problem, self.source, failure.position, at=point
                ) from None
        raise ExpressionError(
            "the result is not a finite number", self.source, self.start, at=point
        )


def read_expression(stream: TokenStream) -> Expression:
    """Parse one expression starting at the stream's position and stop at the first
    token that cannot continue it (a ``,`` ``)`` ``:`` or the end), for callers such as
    the schedule parser that decide what may follow."""
    start = stream.peek().position
    root = _Parser(stream).comparison()
    if _height(root) > MAX_HEIGHT:
        problem = f"expression is too long (more than {MAX_HEIGHT} levels of operations)"
        raise stream.error(problem, start)
    return Expression(stream.source, root, start, stream.previous_end())


def parse_expression(text: str) -> Expression:
    """Parse a whole text as one expression; ExpressionError with column on any problem."""
    stream = TokenStream(text)
    expression = read_expression(stream)
    token = stream.peek()
    if token.kind != "end":
        raise unexpected(stream, token)
    return expression


def unexpected(stream: TokenStream, token: Token, expected: str = "an operator") -> ExpressionError:
    """The error for a token that cannot follow a complete expression: a missing
    operator, a stray ')', or something other than the ``expected`` text."""
    if token.kind in ("number", "seconds", "name") or token.text == "(":
        return stream.error(
            f"missing operator before {token.describe()}", token.position, _SYNTAX_HELP
        )
    if token.text == ")":
        return stream.error("unbalanced parentheses: this ')' has no '('", token.position)
    return stream.error(
        f"expected {expected}, found {token.describe()}", token.position, _SYNTAX_HELP
    )


class _Parser:
    """Recursive descent over a TokenStream, one method per precedence level."""

    def __init__(self, stream: TokenStream) -> None:
        self.stream = stream
        self.depth = 0

    def comparison(self) -> Node:
        first = self.sum()
        ops: list[str] = []
        operands = [first]
        position = self.stream.peek().position
        while self.stream.at_op(*_COMPARE):
            ops.append(self.stream.next().text)
            operands.append(self.sum())
        return Compare(tuple(ops), tuple(operands), position) if ops else first

    def sum(self) -> Node:
        node = self.product()
        while self.stream.at_op("+", "-"):
            op = self.stream.next()
            node = Binary(op.text, node, self.product(), op.position)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.stream.at_op("*", "/", "%"):
            op = self.stream.next()
            node = Binary(op.text, node, self.unary(), op.position)
        return node

    def unary(self) -> Node:
        if self.stream.at_op("+", "-"):
            op = self.stream.next()
            return Unary(op.text, self._nested(self.unary, op), op.position)
        return self.power()

    def power(self) -> Node:
        base = self.primary()
        if self.stream.at_op("**"):
            op = self.stream.next()
            return Binary("**", base, self._nested(self.unary, op), op.position)
        return base

    def primary(self) -> Node:
        token = self.stream.next()
        if token.kind == "number":
            return Num(token.value, token.position)
        if token.kind == "seconds":
            return Binary(
                "*", Num(token.value, token.position), Var("fps", token.position), token.position
            )
        if token.kind == "name":
            if self.stream.at_op("("):
                return self.call(token)
            return self.name(token)
        if token.text == "(":
            inner = self._nested(self.comparison, token)
            self._close(token, "')'")
            return inner
        if token.kind == "end":
            raise self.stream.error(
                "expected a value, but the text ends", token.position, _SYNTAX_HELP
            )
        raise self.stream.error(
            f"expected a value, found {token.describe()}", token.position, _SYNTAX_HELP
        )

    def name(self, token: Token) -> Node:
        if token.text in CONSTANTS:
            return Num(CONSTANTS[token.text], token.position)
        if token.text in VARIABLES:
            return Var(token.text, token.position)
        if token.text in FUNCTIONS:
            problem = f"{token.text} is a function: call it as {FUNCTIONS[token.text].signature}"
            raise self.stream.error(problem, token.position)
        suggestion = _suggest(token.text, [*VARIABLES, *CONSTANTS])
        raise self.stream.error(
            f"unknown name '{token.text}'{suggestion}", token.position, _NAMES_HELP
        )

    def call(self, token: Token) -> Node:
        name = token.text
        if name not in FUNCTIONS:
            if name in VARIABLES or name in CONSTANTS:
                problem = f"{name} is not a function (missing operator before '('?)"
                raise self.stream.error(problem, token.position)
            problem = f"unknown function '{name}'{_suggest(name, list(FUNCTIONS))}"
            raise self.stream.error(problem, token.position, _FUNCTIONS_HELP)
        open_paren = self.stream.next()
        args: list[Node] = []
        if not self.stream.at_op(")"):
            args.append(self._nested(self.comparison, open_paren))
            while self.stream.at_op(","):
                self.stream.next()
                args.append(self._nested(self.comparison, open_paren))
        self._close(open_paren, "',' or ')'")
        function = FUNCTIONS[name]
        if len(args) < function.min_args or (
            function.max_args is not None and len(args) > function.max_args
        ):
            wanted = function.min_args if function.max_args else f"at least {function.min_args}"
            noun = "argument" if wanted == 1 else "arguments"
            problem = f"{function.signature} takes {wanted} {noun}, got {len(args)}"
            raise self.stream.error(problem, token.position)
        return Call(name, tuple(args), token.position)

    def _close(self, open_paren: Token, expected: str) -> None:
        token = self.stream.peek()
        if token.text == ")" and token.kind == "op":
            self.stream.next()
            return
        if token.kind == "end":
            problem = "unbalanced parentheses: this '(' is never closed"
            raise self.stream.error(problem, open_paren.position)
        raise unexpected(self.stream, token, expected)

    def _nested(self, parse: Callable[[], Node], opener: Token) -> Node:
        """Run a nested parse, refusing nesting deep enough to exhaust the stack."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            problem = f"expression is nested too deeply (more than {MAX_NESTING} levels)"
            raise self.stream.error(problem, opener.position)
        try:
            return parse()
        finally:
            self.depth -= 1
