"""Loading the lark grammars: once per process, lazily, from package data."""

from __future__ import annotations

import functools
from typing import Any

from lark import Lark, Transformer


@functools.cache
def _grammar_parser(name: str, start: tuple[str, ...], transformer: Transformer[Any, Any]) -> Lark:
    return Lark.open_from_package(
        "tracelog",
        f"{name}.lark",
        ("grammars",),
        parser="lalr",
        lexer="contextual",
        start=list(start),
        transformer=transformer,
        maybe_placeholders=False,
    )


def load_parser(name: str, start: tuple[str, ...], transformer: Transformer[Any, Any]) -> Lark:
    """A tree-less LALR parser for `grammars/<name>.lark`.

    The transformer runs inside the parser, so no parse tree is ever built:
    that is what keeps a per-line parser affordable on million-line logs.
    Parsers are cached on (name, start, transformer), so callers pass a
    module-level transformer instance.
    """
    return _grammar_parser(name, start, transformer)
