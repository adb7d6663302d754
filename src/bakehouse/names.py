"""The shapes of every name bakehouse accepts, from a definition or a flag (no imports: the
command layer checks flags with these before anything else loads).

A value that reaches a file path, an SSM parameter name, a tag or a terminal is one of these
shapes or is refused, whichever way it came in."""

from __future__ import annotations

import re

NAME_RE = r"[a-z][a-z0-9-]{0,39}"  # an image name, and so a file name under images/
CHANNEL_RE = r"[a-z][a-z0-9-]{0,31}"
VERSION_RE = r"[0-9]{8}\.[0-9]{6}"  # the UTC time the bake started, e.g. 20261129.190000
REGION_RE = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]"

# what a flag's value must look like: (pattern, what it is, an example)
FLAG_SHAPES: dict[str, tuple[str, str, str]] = {
    "image": (NAME_RE, "an image name (a-z, 0-9, -)", "web"),
    "force": (NAME_RE, "an image name (a-z, 0-9, -)", "web"),
    "channel": (CHANNEL_RE, "a channel name (a-z, 0-9, -)", "stable"),
    "version": (VERSION_RE, "a version (YYYYMMDD.HHMMSS)", "20261129.190000"),
    "old": (VERSION_RE, "a version (YYYYMMDD.HHMMSS)", "20261129.190000"),
    "new": (VERSION_RE, "a version (YYYYMMDD.HHMMSS)", "20261129.190000"),
    "region": (REGION_RE, "an AWS region", "eu-west-1"),
}

# control characters a value may not hold (terminal escapes, line breaks); the multi-line
# variant allows tab and newline
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def check_flag(flag: str, value: object) -> None:
    """Raise the UsageError :func:`bad_flag` describes, if any."""
    bad = bad_flag(flag, value)
    if bad:
        from bakehouse.errors import UsageError

        raise UsageError(*bad)


def bad_flag(flag: str, value: object) -> tuple[str, str] | None:
    """(message, hint) when ``value`` of ``--flag`` has the wrong shape, else None (pure)."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is None or isinstance(item, bool | int):
            continue
        text = str(item)
        dashed = "--" + flag.replace("_", "-")
        shape = FLAG_SHAPES.get(flag)
        if shape and not re.fullmatch(shape[0], text):
            return f"{dashed} {text!r} is not {shape[1]}", f"e.g. {dashed} {shape[2]}"
        if CONTROL.search(text):
            return (
                f"{dashed} {text!r} holds control characters",
                "pass plain text on one line, without escape sequences",
            )
    return None
