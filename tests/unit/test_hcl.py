"""HCL literals cannot change a template's structure; layout matches `packer fmt`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bakehouse import hcl

_DECODE = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def decode(literal: str) -> str:
    """An independent reader of HCL quoted strings (template escapes included)."""
    assert literal[0] == literal[-1] == '"'
    body = literal[1:-1]
    out = []
    i = 0
    while i < len(body):
        two = body[i : i + 2]
        if two in _DECODE:
            out.append(_DECODE[two])
            i += 2
        elif body.startswith("\\u", i):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif body.startswith("$${", i) or body.startswith("%%{", i):
            out.append(body[i] + "{")
            i += 3
        else:
            assert body[i] not in '"\\\n', f"raw {body[i]!r} inside a literal"
            assert not body.startswith("${", i) and not body.startswith("%{", i), "live template"
            out.append(body[i])
            i += 1
    return "".join(out)


# "{{" is refused on purpose: test_injection.py::test_render_refuses_a_template_expression_…
@given(st.text().filter(lambda t: "{{" not in t))
def test_quote_round_trips(text: str) -> None:
    lit = hcl.quote(text)
    assert "\n" not in lit
    assert decode(lit) == text


@pytest.mark.parametrize(
    "evil",
    [
        'x"\n  communicator = "none',
        '${file("/etc/shadow")}',
        "%{ for x in y }boom%{ endfor }",
        "$${already}",
        "back\\slash\\",
        "tab\tnew\nline\r",
        "\x00\x1b[31m",
        "\u2028",
    ],
)
def test_evil_strings_stay_values(evil: str) -> None:
    lit = hcl.quote(evil)
    assert decode(lit) == evil
    assert re.fullmatch(r'"([^"\\]|\\.)*"', lit)


def test_literals() -> None:
    assert hcl.literal(True) == "true"
    assert hcl.literal(3) == "3"
    assert hcl.literal(["a", 1]) == '["a", 1]'
    assert hcl.literal(hcl.raw("var.x")) == "var.x"
    assert hcl.literal({"k": "v", "long-key": hcl.raw("var.v")}, 2) == (
        '{\n    "k"        = "v"\n    "long-key" = var.v\n  }'
    )
    with pytest.raises(TypeError):
        hcl.literal(object())
    with pytest.raises(ValueError):
        hcl.literal(float("nan"))


def test_align_groups_like_packer_fmt() -> None:
    text = (
        "a {\n  x = 1\n  longer = {\n    k = 1\n  }\n  b = 2\n  ccc = [\n    1,\n  ]\n"
        '  # c\n  d = 3\n\n  eeee = 4\n  f = "="\n}\n'
    )
    assert hcl.align(text) == (
        "a {\n  x = 1\n  longer = {\n    k = 1\n  }\n  b = 2\n  ccc = [\n    1,\n  ]\n"
        '  # c\n  d = 3\n\n  eeee = 4\n  f    = "="\n}\n'
    )
