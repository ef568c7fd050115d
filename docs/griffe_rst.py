"""A Griffe extension for the API reference: the reST bits of mcgen's numpydoc docstrings as Markdown.

The docstrings are written for numpydoc: ``.. math::`` blocks, ``:math:`...``` inline
math and ``:func:``-style roles.  mkdocstrings renders docstring text as Markdown, so before
parsing, math becomes ``$...$`` / ``$$...$$`` (rendered by MathJax through
``pymdownx.arithmatex``) and roles become code spans.  Only the docs build uses this file.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|py:\w+):`~?([^`]+)`")
_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(r"^(\s*)\.\. math::\s*$")
_EXAMPLE_HEADING = re.compile(r"^(\s*)Example\n(\s*)-------$", re.M)


def _math_blocks(text: str) -> str:
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        match = _MATH_BLOCK.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        body, i = [], i + 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        content = [line.strip() for line in body if line.strip()]
        out += [indent + "$$", *(indent + line for line in content), indent + "$$", ""]
    return "\n".join(out)


def _doctest_fences(text: str) -> str:
    """Fence every doctest run (``>>>`` lines, their continuations and output) as ``pycon``."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if not stripped.startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(stripped)]
        out.append(indent + "```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(indent + lines[i].strip())
            i += 1
        out.append(indent + "```")
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """Rewrite the reST constructs used in mcgen's docstrings as Markdown."""
    text = _doctest_fences(text)
    text = _EXAMPLE_HEADING.sub(lambda m: f"{m.group(1)}Examples\n{m.group(2)}--------", text)
    text = _math_blocks(text)
    text = _INLINE_MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1).split('.')[-1] if m.group(0).count('~') else m.group(1)}`", text)
    return text


class RstToMarkdown(griffe.Extension):
    """Apply :func:`rst_to_markdown` to every docstring Griffe collects."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
