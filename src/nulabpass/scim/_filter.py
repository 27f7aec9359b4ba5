"""SCIM filters and attribute paths (RFC 7644 §3.4.2.2 and §3.5.2), parsed to an AST.

Theory of operation
-------------------
:func:`parse_filter` turns filter text into a tree of frozen nodes: :class:`Compare`
(``attrPath op value``), :class:`Present` (``attrPath pr``), :class:`And`, :class:`Or`,
:class:`Not` and :class:`ValuePath` (``emails[type eq "work"]``). :func:`parse_path`
parses a PATCH ``path`` (an attribute path, or a value path optionally followed by a
sub-attribute). :func:`format_filter` writes a tree back as text that parses to the same
tree, which is what the round-trip tests check.

The text is refused before tokenising when it is longer than :data:`MAX_FILTER_LENGTH`,
and while parsing when grouping nests deeper than :data:`MAX_FILTER_DEPTH`; the parser
keeps its own recursion bounded by that depth, so no input can exhaust the stack. Every
problem raises :class:`~nulabpass.scim.ScimError` with ``scimType`` ``invalidFilter``
(or ``invalidPath`` for PATCH paths) and nothing else.

Operators, keywords and attribute names are case-insensitive (§3.4.2.2); the tree keeps
what was written, and the layers that resolve names against schemas fold the case.
Precedence follows the RFC: ``not`` binds tightest, then ``and``, then ``or``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Union

import attrs

from nulabpass.scim._errors import ScimError, invalid_filter, invalid_path

__all__ = [
    "COMPARE_OPERATORS",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "And",
    "AttrPath",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "PatchPath",
    "Present",
    "ValuePath",
    "format_filter",
    "format_path",
    "parse_filter",
    "parse_path",
]

#: Filters longer than this many characters are refused before parsing.
MAX_FILTER_LENGTH = 2048
#: Deepest nesting of parentheses, ``not`` and value paths accepted.
MAX_FILTER_DEPTH = 16

#: The comparison operators of §3.4.2.2.
COMPARE_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"})
_ORDERING = frozenset({"gt", "lt", "ge", "le"})
_SUBSTRING = frozenset({"co", "sw", "ew"})

Scalar = Union[str, int, float, bool, None]  # noqa: UP007 - a runtime alias needs Union


@attrs.frozen(slots=True)
class AttrPath:
    """``[urn ":"] attr ["." sub]``: an attribute, optionally of an extension schema."""

    attr: str
    sub: str | None = None
    urn: str | None = None

    def text(self) -> str:
        """The path as SCIM writes it."""
        head = f"{self.urn}:{self.attr}" if self.urn else self.attr
        return f"{head}.{self.sub}" if self.sub else head


@attrs.frozen(slots=True)
class Compare:
    """``path op value`` with ``op`` lower-cased."""

    path: AttrPath
    op: str
    value: Scalar


@attrs.frozen(slots=True)
class Present:
    """``path pr``: the attribute has a non-empty value."""

    path: AttrPath


@attrs.frozen(slots=True)
class And:
    """Both sides match."""

    left: Filter
    right: Filter


@attrs.frozen(slots=True)
class Or:
    """Either side matches."""

    left: Filter
    right: Filter


@attrs.frozen(slots=True)
class Not:
    """``not (inner)``."""

    inner: Filter


@attrs.frozen(slots=True)
class ValuePath:
    """``path[filter]``: some value of a multi-valued complex attribute matches
    ``filter``, whose paths name that attribute's sub-attributes."""

    path: AttrPath
    filter: Filter


Filter = Union[Compare, Present, And, Or, Not, ValuePath]  # noqa: UP007


@attrs.frozen(slots=True)
class PatchPath:
    """A PATCH path: an attribute, or a filtered multi-valued attribute and optionally
    one of its sub-attributes (``emails[type eq "work"].value``)."""

    path: AttrPath
    filter: Filter | None = None
    sub: str | None = None


# ---------------------------------------------------------------------------------------
# Tokens

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[\ \t\r\n]+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<lbrack>\[)
  | (?P<rbrack>\])
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\.)*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.:$-]))
  | (?P<word>[A-Za-z$.][A-Za-z0-9_:.$-]*)
    """,
    re.VERBOSE,
)

_NAME_RE = re.compile(r"(?:\$ref|[A-Za-z][A-Za-z0-9_-]*)\Z")
_URN_RE = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]*(?::[A-Za-z0-9()+,\-.=@;$_!*'%/?#]+)+\Z", re.I)

_Token = tuple[str, str, int]


def _tokens(text: str, error: type[_Raise]) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise error.at(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class _Raise:
    """How a parser reports errors: filters and PATCH paths use different scimTypes."""

    what = "filter"

    @classmethod
    def make(cls, message: str) -> ScimError:
        return invalid_filter(message)

    @classmethod
    def at(cls, message: str, pos: int) -> ScimError:
        return cls.make(f"The {cls.what} is not valid: {message} at position {pos}.")


class _RaisePath(_Raise):
    what = "PATCH path"

    @classmethod
    def make(cls, message: str) -> ScimError:
        return invalid_path(message)


def _attr_path(word: str, pos: int, error: type[_Raise]) -> AttrPath:
    urn: str | None = None
    rest = word
    if word[:4].lower() == "urn:":
        head, sep, tail = word.rpartition(":")
        if not sep or not _URN_RE.match(head) or not tail:
            raise error.at(f"{word!r} is not a schema URN followed by an attribute", pos)
        urn, rest = head, tail
    attr, dot, sub = rest.partition(".")
    if not _NAME_RE.match(attr) or (dot and not _NAME_RE.match(sub)):
        raise error.at(f"{word!r} is not an attribute path", pos)
    return AttrPath(attr, sub if dot else None, urn)


class _Parser:
    def __init__(self, text: str, error: type[_Raise]) -> None:
        self.error = error
        self.tokens = _tokens(text, error)
        self.i = 0
        self.end = len(text)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise self.error.at("the text ended too early", self.end)
        self.i += 1
        return tok

    def expect(self, kind: str) -> _Token:
        tok = self.next()
        if tok[0] != kind:
            raise self.error.at(f"expected {_KIND_TEXT[kind]} but found {tok[1]!r}", tok[2])
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        return bool(tok is not None and tok[0] == "word" and tok[1].lower() in words)

    # filter := and_expr ("or" and_expr)*
    def filter(self, depth: int, nested: bool) -> Filter:
        if depth > MAX_FILTER_DEPTH:
            tok = self.peek()
            raise self.error.at(
                f"grouping nests deeper than {MAX_FILTER_DEPTH} levels",
                tok[2] if tok else self.end,
            )
        node = self.conjunction(depth, nested)
        while self.keyword("or"):
            self.i += 1
            node = Or(node, self.conjunction(depth, nested))
        return node

    def conjunction(self, depth: int, nested: bool) -> Filter:
        node = self.unary(depth, nested)
        while self.keyword("and"):
            self.i += 1
            node = And(node, self.unary(depth, nested))
        return node

    def unary(self, depth: int, nested: bool) -> Filter:
        tok = self.next()
        kind, value, pos = tok
        if kind == "lparen":
            inner = self.filter(depth + 1, nested)
            self.expect("rparen")
            return inner
        if kind == "word" and value.lower() == "not":
            nxt = self.peek()
            if nxt is not None and nxt[0] == "lparen":
                self.i += 1
                inner = self.filter(depth + 1, nested)
                self.expect("rparen")
                return Not(inner)
        if kind != "word":
            raise self.error.at(f"expected an attribute path but found {value!r}", pos)
        path = _attr_path(value, pos, self.error)
        nxt = self.peek()
        if nxt is not None and nxt[0] == "lbrack":
            if nested:
                raise self.error.at("a value path cannot contain another value path", nxt[2])
            if path.sub is not None:
                raise self.error.at(
                    "a value path applies to an attribute, not a sub-attribute", pos
                )
            self.i += 1
            inner = self.filter(depth + 1, True)
            self.expect("rbrack")
            return ValuePath(path, inner)
        return self.comparison(path, pos)

    def comparison(self, path: AttrPath, pos: int) -> Filter:
        op_tok = self.next()
        op = op_tok[1].lower()
        if op_tok[0] == "word" and op == "pr":
            return Present(path)
        if op_tok[0] != "word" or op not in COMPARE_OPERATORS:
            raise self.error.at(f"{op_tok[1]!r} is not a comparison operator", op_tok[2])
        value = self.value()
        if value is None or isinstance(value, bool):
            if op not in {"eq", "ne"}:
                raise self.error.at(
                    f"the operator {op} needs a string, number or date value", op_tok[2]
                )
        elif op in _SUBSTRING and not isinstance(value, str):
            raise self.error.at(f"the operator {op} needs a string value", op_tok[2])
        return Compare(path, op, value)

    def value(self) -> Scalar:
        kind, text, pos = self.next()
        if kind == "string":
            try:
                decoded = json.loads(text)
            except ValueError:
                raise self.error.at("the string has an invalid escape", pos) from None
            if not isinstance(decoded, str):  # pragma: no cover - the regex admits strings only
                raise self.error.at("expected a string", pos)
            return decoded
        if kind == "number":
            try:
                number: int | float = int(text) if re.fullmatch(r"-?[0-9]+", text) else float(text)
            except ValueError:
                raise self.error.at("the number is out of range", pos) from None
            if isinstance(number, float) and not math.isfinite(number):
                raise self.error.at("the number is out of range", pos)
            return number
        if kind == "word":
            lowered = text.lower()
            if lowered == "true":
                return True
            if lowered == "false":
                return False
            if lowered == "null":
                return None
        raise self.error.at(
            f"expected a value (string, number, true, false, null), found {text!r}", pos
        )


_KIND_TEXT = {
    "rparen": "')'",
    "rbrack": "']'",
    "lparen": "'('",
    "word": "a word",
}


def _check_text(text: object, error: type[_Raise]) -> str:
    if not isinstance(text, str):
        raise error.make(f"The {error.what} must be a string.")
    if len(text) > MAX_FILTER_LENGTH:
        raise error.make(
            f"The {error.what} is {len(text)} characters long; at most "
            f"{MAX_FILTER_LENGTH} are accepted."
        )
    if not text.strip():
        raise error.make(f"The {error.what} is empty.")
    return text


def parse_filter(text: str) -> Filter:
    """Parse a filter (RFC 7644 §3.4.2.2) or raise ``ScimError`` (``invalidFilter``)."""
    parser = _Parser(_check_text(text, _Raise), _Raise)
    node = parser.filter(0, False)
    tok = parser.peek()
    if tok is not None:
        raise _Raise.at(f"unexpected {tok[1]!r} after the end of the filter", tok[2])
    return node


def parse_path(text: str) -> PatchPath:
    """Parse a PATCH path (RFC 7644 §3.5.2) or raise ``ScimError`` (``invalidPath``)."""
    parser = _Parser(_check_text(text, _RaisePath), _RaisePath)
    kind, word, pos = parser.next()
    if kind != "word":
        raise _RaisePath.at(f"expected an attribute path but found {word!r}", pos)
    path = _attr_path(word, pos, _RaisePath)
    tok = parser.peek()
    if tok is None:
        return PatchPath(path)
    if tok[0] != "lbrack" or path.sub is not None:
        raise _RaisePath.at(f"unexpected {tok[1]!r}", tok[2])
    parser.i += 1
    inner = parser.filter(1, True)
    parser.expect("rbrack")
    sub: str | None = None
    tok = parser.peek()
    if tok is not None:
        kind, word, pos = parser.next()
        if kind != "word" or not word.startswith(".") or not _NAME_RE.match(word[1:]):
            raise _RaisePath.at(f"expected '.subAttribute' but found {word!r}", pos)
        sub = word[1:]
        if parser.peek() is not None:
            extra = parser.next()
            raise _RaisePath.at(f"unexpected {extra[1]!r}", extra[2])
    return PatchPath(path, inner, sub)


# ---------------------------------------------------------------------------------------
# Formatting


def _format_value(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _prec(node: Filter) -> int:
    if isinstance(node, Or):
        return 1
    if isinstance(node, And):
        return 2
    return 3


def format_filter(node: Filter) -> str:
    """Write ``node`` as filter text that :func:`parse_filter` parses back to ``node``."""
    if isinstance(node, Compare):
        return f"{node.path.text()} {node.op} {_format_value(node.value)}"
    if isinstance(node, Present):
        return f"{node.path.text()} pr"
    if isinstance(node, Not):
        return f"not ({format_filter(node.inner)})"
    if isinstance(node, ValuePath):
        return f"{node.path.text()}[{format_filter(node.filter)}]"
    word = "or" if isinstance(node, Or) else "and"
    mine = _prec(node)
    left = format_filter(node.left)
    if _prec(node.left) < mine:
        left = f"({left})"
    right = format_filter(node.right)
    # Left-associative parsing: a right child of the same precedence needs parentheses.
    if _prec(node.right) <= mine:
        right = f"({right})"
    return f"{left} {word} {right}"


def format_path(path: PatchPath) -> str:
    """Write a PATCH path as text."""
    text = path.path.text()
    if path.filter is not None:
        text += f"[{format_filter(path.filter)}]"
    if path.sub:
        text += f".{path.sub}"
    return text
