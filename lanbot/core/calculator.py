"""lanbot's calculator: the one tool the model may call, and the judge of every tool result in the data.

An AST-whitelisted evaluator, never `eval`: numbers, + - * / // % and bounded powers, parentheses,
unary signs, `"text".count("x")` and `len("text")`. Input size, node count, exponents and result
magnitudes are bounded, so no expression can take long or eat memory.

    >>> calculate("(23.5 + 4.25) * 0.18")
    '4.995'
"""

from __future__ import annotations

import ast
import math
import operator

from lanbot.core.errors import LanbotError

MAX_CHARS = 400       # longest expression accepted
MAX_NODES = 120       # most AST nodes accepted
MAX_EXPONENT = 64     # largest |exponent| in a power
MAX_MAGNITUDE = 1e30  # largest |value| of any intermediate result
MAX_STR = 2000        # longest string literal

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(LanbotError, ValueError):
    """An expression the calculator refuses or cannot evaluate; the message says why."""


def calculate(expression: str) -> str:
    """Evaluate `expression` and return its result as the text the model sees."""
    return format_number(evaluate(expression))


def evaluate(expression: str) -> int | float:
    """Evaluate `expression` to a number; raise CalculatorError for anything outside the whitelist."""
    if not isinstance(expression, str):
        raise CalculatorError("expression must be a string")
    text = expression.strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_CHARS:
        raise CalculatorError(f"expression longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not a valid expression: {exc.msg}") from None
    except ValueError:  # a lone surrogate (UnicodeEncodeError) or a NUL byte: not text Python can read
        raise CalculatorError("not a valid expression: it holds characters that are not valid Unicode") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError(f"expression has more than {MAX_NODES} parts")
    value = _eval(tree.body)
    if isinstance(value, str):
        raise CalculatorError("result is text, not a number")
    return value


def format_number(value: int | float) -> str:
    """Integers as they are; floats rounded to 10 significant digits, whole floats without '.0'."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.10g}"
    return text


def _check(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise CalculatorError("result is not a finite number")
        if abs(value) > MAX_MAGNITUDE:
            raise CalculatorError("result too large")
    return value


def _eval(node: ast.AST):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float, str)):
            raise CalculatorError(f"unsupported literal {node.value!r}")
        if isinstance(node.value, str) and len(node.value) > MAX_STR:
            raise CalculatorError(f"string longer than {MAX_STR} characters")
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(left, str) or isinstance(right, str):
            raise CalculatorError("arithmetic on text is not supported")
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
            if left == 0 and right < 0:
                raise CalculatorError("division by zero")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("result too large") from None
        if isinstance(result, complex):
            raise CalculatorError("result is not a real number")
        return _check(result)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _eval(node.operand)
        if isinstance(operand, str):
            raise CalculatorError("arithmetic on text is not supported")
        return _UNARY[type(node.op)](operand)
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "len" and len(node.args) == 1:
            arg = _eval(node.args[0])
            if not isinstance(arg, str):
                raise CalculatorError("len() takes a quoted string")
            return len(arg)
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "count"
            and len(node.args) == 1
        ):
            target, needle = _eval(func.value), _eval(node.args[0])
            if not isinstance(target, str) or not isinstance(needle, str) or not needle:
                raise CalculatorError('.count() works as "text".count("x") with a non-empty "x"')
            return target.count(needle)
        raise CalculatorError('only len("text") and "text".count("x") may be called')
    raise CalculatorError(f"{type(node).__name__} is not allowed; use numbers, + - * / // % **, len() or .count()")
