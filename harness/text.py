"""Text made fit for a one-line message: its first line, its whitespace squeezed, or its
unprintable characters escaped."""

from __future__ import annotations


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, for one-line reasons."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def squeezed(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


def printable(text: str) -> str:
    """``text`` with the characters that would break a message over lines escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
