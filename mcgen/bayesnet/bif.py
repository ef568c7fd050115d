r"""Read and write the Bayesian Interchange Format (BIF 0.15).

The grammar accepted (Cozman's Interchange Format; comments ``//`` and ``/* */``; ``,`` and
``|`` are separators that may be omitted, as the format allows)::

    file        := [network] (variable | probability)*
    network     := "network" NAME "{" property* "}"
    variable    := "variable" NAME "{" (type | property)* "}"
    type        := "type" "discrete" "[" INT "]" "{" NAME* "}" ";"
    probability := "probability" "(" NAME ["|"] NAME* ")" "{" (row | table | default | property)* "}"
    row         := "(" NAME+ ")" NUMBER+ ";"       -- one parent configuration, child's states
    table       := "table" NUMBER+ ";"             -- child slowest, last parent fastest
    default     := "default" NUMBER+ ";"           -- rows not listed
    property    := "property" ... ";"

A ``NAME`` is a bare word or a ``"quoted string"``.  The parser is strict: a token it does
not expect is an error that quotes the token and its line; numbers must be plain decimals;
every variable needs exactly one type and one probability block; every parent configuration
needs a row (or a ``default``).  Nothing is ever evaluated.  The network is then validated by
:class:`~mcgen.bayesnet.BayesNet` (acyclic, row sums, no negative entries).

:func:`to_bif` writes variables in topological order, root tables with ``table`` and the
others one row per parent configuration, numbers with ``repr`` so that reading the text
back gives the same floats.
"""

from __future__ import annotations

import itertools
import os
import re

import numpy as np

from mcgen.bayesnet._errors import BIFSyntaxError, CPTError
from mcgen.bayesnet.network import BayesNet, Variable

__all__ = ["parse_bif", "read_bif", "to_bif", "write_bif"]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"[^"\n]*")
  | (?P<unterminated>/\*|")
  | (?P<punct>[{}()\[\];])
  | (?P<sep>[,|])
  | (?P<word>[^\s{}()\[\];,|"]+)
""",
    re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BARE = re.compile(r"[A-Za-z0-9_.+\-]+")
_KEYWORDS = {"network", "variable", "probability", "property", "type", "discrete", "table", "default"}


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # every character starts some token
        kind = m.lastgroup
        if kind == "unterminated":
            what = "block comment" if m.group() == "/*" else "string"
            raise BIFSyntaxError(f"unterminated {what}", line)
        if kind in ("punct", "word"):
            tokens.append((kind, m.group(), line))
        elif kind == "string":
            tokens.append((kind, m.group()[1:-1], line))
        line += m.group().count("\n")
        pos = m.end()
    tokens.append(("end", "end of text", line))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens, self.pos = _tokenize(text), 0

    @property
    def line(self) -> int:
        return self.tokens[self.pos][2]

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.tokens[self.pos][0] != "string" else '"'

    def next(self) -> tuple[str, str, int]:
        tok = self.tokens[self.pos]
        self.pos += min(1, len(self.tokens) - 1 - self.pos)
        return tok

    def fail(self, expected: str, tok=None, variable=None):
        kind, text, line = tok or self.tokens[self.pos]
        shown = "end of text" if kind == "end" else repr(text)
        raise BIFSyntaxError(f"expected {expected}, got {shown}", line, variable)

    def expect(self, punct: str, variable=None) -> None:
        tok = self.next()
        if tok[1] != punct or tok[0] not in ("punct", "word"):
            self.fail(repr(punct), tok, variable)

    def name(self, what: str = "a name", variable=None) -> str:
        tok = self.next()
        if tok[0] not in ("word", "string") or (tok[0] == "word" and tok[1] in _KEYWORDS):
            self.fail(what, tok, variable)
        return tok[1]

    def names_until(self, close: str, variable=None) -> list[str]:
        out = []
        while self.peek() != close:
            out.append(self.name(f"a name or {close!r}", variable))
        self.next()
        return out

    def numbers(self, variable) -> list[float]:
        out = []
        while self.peek() != ";":
            tok = self.next()
            if tok[0] != "word" or not _NUMBER.fullmatch(tok[1]):
                self.fail("a number or ';'", tok, variable)
            out.append(float(tok[1]))
        self.next()
        if not out:
            self.fail("at least one number", variable=variable)
        return out

    def skip_property(self) -> None:
        while self.peek() != ";":
            if self.next()[0] == "end":
                self.fail("';' ending the property")
        self.next()


def _parse_variable(p: _Parser, declared: dict) -> None:
    line = p.line
    var = p.name("a variable name")
    if var in declared:
        raise BIFSyntaxError(f"variable {var!r} is declared twice", line, var)
    p.expect("{", var)
    states = None
    while p.peek() != "}":
        kw = p.next()
        if kw[1] == "property" and kw[0] == "word":
            p.skip_property()
        elif kw[1] == "type" and kw[0] == "word":
            if states is not None:
                raise BIFSyntaxError(f"variable {var!r} has two type declarations", kw[2], var)
            if p.next()[1] != "discrete":
                raise BIFSyntaxError(f"variable {var!r}: only 'type discrete' is supported", kw[2], var)
            p.expect("[", var)
            count = p.next()
            if not count[1].isdigit():
                p.fail("the number of states", count, var)
            p.expect("]", var)
            p.expect("{", var)
            states = p.names_until("}", var)
            p.expect(";", var)
            if len(states) != int(count[1]):
                raise BIFSyntaxError(
                    f"variable {var!r} declares {count[1]} states but lists {len(states)}", count[2], var
                )
        else:
            p.fail("'type', 'property' or '}'", kw, var)
    p.next()
    if states is None:
        raise BIFSyntaxError(f"variable {var!r} has no 'type discrete' declaration", line, var)
    declared[var] = (states, line)


def _parse_probability(p: _Parser, declared: dict, blocks: dict) -> None:
    line = p.line
    p.expect("(")
    scope = p.names_until(")")
    if not scope:
        raise BIFSyntaxError("a probability block needs at least the child variable", line)
    child, parents = scope[0], scope[1:]
    for v in scope:
        if v not in declared:
            raise BIFSyntaxError(f"probability block uses undeclared variable {v!r}", line, v)
    if child in blocks:
        raise BIFSyntaxError(f"variable {child!r} has two probability blocks", line, child)
    states = declared[child][0]
    pstates = [declared[v][0] for v in parents]
    cpt = np.full([len(s) for s in pstates] + [len(states)], np.nan)
    rows, table, default = set(), None, None
    p.expect("{", child)
    while p.peek() != "}":
        tok = p.tokens[p.pos]
        if tok[1] == "(" and tok[0] == "punct":
            p.next()
            config = p.names_until(")", child)
            values = p.numbers(child)
            if len(config) != len(parents):
                raise BIFSyntaxError(
                    f"row of {child!r} names {len(config)} parent states, expected "
                    f"{len(parents)} ({', '.join(parents) or 'no parents'})",
                    tok[2],
                    child,
                )
            index = []
            for v, s, given in zip(parents, pstates, config):
                if given not in s:
                    raise BIFSyntaxError(f"row of {child!r}: {given!r} is not a state of {v!r}", tok[2], child)
                index.append(s.index(given))
            if tuple(index) in rows:
                raise BIFSyntaxError(f"row {tuple(config)} of {child!r} is given twice", tok[2], child)
            if len(values) != len(states):
                raise BIFSyntaxError(
                    f"row {tuple(config)} of {child!r} has {len(values)} numbers, expected {len(states)}", tok[2], child
                )
            rows.add(tuple(index))
            cpt[tuple(index)] = values
        elif tok[0] == "word" and tok[1] in ("table", "default"):
            p.next()
            values = p.numbers(child)
            size = len(states) * (int(np.prod([len(s) for s in pstates])) if tok[1] == "table" else 1)
            if len(values) != size:
                raise BIFSyntaxError(f"{tok[1]} of {child!r} has {len(values)} numbers, expected {size}", tok[2], child)
            if tok[1] == "table":
                table = np.moveaxis(np.reshape(values, cpt.shape[-1:] + cpt.shape[:-1]), 0, -1)
            else:
                default = values
        elif tok[0] == "word" and tok[1] == "property":
            p.next()
            p.skip_property()
        else:
            p.fail("'(', 'table', 'default', 'property' or '}'", variable=child)
    p.next()
    if table is not None:
        if rows or default is not None:
            raise BIFSyntaxError(f"probability block of {child!r} mixes 'table' with rows", line, child)
        cpt = table
    elif default is not None:
        cpt[np.isnan(cpt[..., 0])] = default
    missing = np.argwhere(np.isnan(cpt[..., 0])) if parents else ([()] if np.isnan(cpt).any() else [])
    if len(missing):
        config = tuple(s[i] for s, i in zip(pstates, missing[0]))
        raise BIFSyntaxError(f"probability block of {child!r} gives no row for parents {config}", line, child)
    blocks[child] = (parents, cpt, line)


def parse_bif(text: str) -> BayesNet:
    """Parse BIF text into a :class:`~mcgen.bayesnet.BayesNet`.

    Raises
    ------
    BIFSyntaxError
        Malformed text, with the line number and (where there is one) the variable.
    CPTError, CycleError
        A well-formed file whose network is invalid; CPT errors carry the block's line.
    """
    p = _Parser(text)
    name, declared, blocks = "bayesnet", {}, {}
    if p.peek() == "network":
        p.next()
        name = p.name("a network name")
        p.expect("{")
        while p.peek() != "}":
            tok = p.next()
            if tok[1] != "property":
                p.fail("'property' or '}'", tok)
            p.skip_property()
        p.next()
    while p.tokens[p.pos][0] != "end":
        tok = p.next()
        if tok[0] == "word" and tok[1] == "variable":
            _parse_variable(p, declared)
        elif tok[0] == "word" and tok[1] == "probability":
            _parse_probability(p, declared, blocks)
        else:
            p.fail("'variable' or 'probability'", tok)
    for var, (_, line) in declared.items():
        if var not in blocks:
            raise BIFSyntaxError(f"variable {var!r} has no probability block", line, var)
    variables = [Variable(v, declared[v][0], blocks[v][0], blocks[v][1]) for v in declared]
    try:
        return BayesNet(variables, name=name)
    except CPTError as err:
        raise CPTError(f"line {blocks[err.variable][2]}: {err}", err.variable) from None


def read_bif(path: str | os.PathLike) -> BayesNet:
    """Read a BIF file (see :func:`parse_bif`)."""
    with open(path, encoding="utf-8") as f:
        return parse_bif(f.read())


def _quote(name: str) -> str:
    if _BARE.fullmatch(name) and name not in _KEYWORDS:
        return name
    if '"' in name or "\n" in name:
        raise ValueError(f"the name {name!r} cannot be written to BIF (it holds a quote or a newline)")
    return f'"{name}"'


def to_bif(bn: BayesNet) -> str:
    """The network as BIF text; ``parse_bif(to_bif(bn))`` gives back the same network."""
    out = [f"network {_quote(bn.name)} {{\n}}\n"]
    for v in bn.variables:
        states = ", ".join(_quote(s) for s in bn.states[v])
        out.append(f"variable {_quote(v)} {{\n  type discrete [ {len(bn.states[v])} ] {{ {states} }};\n}}\n")
    for v in bn.variables:
        cpt, parents = bn.cpts[v], bn.parents[v]
        if not parents:
            out.append(f"probability ( {_quote(v)} ) {{\n  table {', '.join(map(repr, map(float, cpt)))};\n}}\n")
            continue
        lines = [f"probability ( {_quote(v)} | {', '.join(map(_quote, parents))} ) {{"]
        for index in itertools.product(*(range(len(bn.states[q])) for q in parents)):
            config = ", ".join(_quote(bn.states[q][i]) for q, i in zip(parents, index))
            lines.append(f"  ({config}) {', '.join(map(repr, map(float, cpt[index])))};")
        out.append("\n".join(lines) + "\n}\n")
    return "".join(out)


def write_bif(bn: BayesNet, path: str | os.PathLike) -> None:
    """Write the network to ``path`` as BIF."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_bif(bn))
