"""Secret redaction: values of environment variables named like credentials never reach evidence.

What is matched: the value of every variable whose name has a credential word (below), at least
``MIN_SECRET_LENGTH`` characters long, as a substring, raw and in every encoding our files give
it (HTML-escaped, JSON-escaped, URL-encoded, base64, and layers of these: pytest-html puts HTML
into JSON into an HTML attribute). What is never changed: JSON keys, numbers and booleans (only
string values are redacted, before they are serialised), and the spans a writer keeps, such as
the bundle's own file names and vocabulary, run ids and hex digests, so a secret equal to a
number or a common word still leaves valid, verifiable evidence.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from itertools import product
from typing import Any

# A credential word ending the name or one of its underscore-separated parts: HF_TOKEN,
# KAGGLE_KEY, AWS_SECRET_ACCESS_KEY, APIKEY; not TOKENIZERS_PARALLELISM.
SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?)S?(_|$)", re.IGNORECASE)
# Values too common to be secrets; hiding them would corrupt unrelated text.
NOT_SECRET_VALUES = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off"})
MIN_SECRET_LENGTH = 4
REDACTED = "[REDACTED]"
# Spans no secret is taken out of: hex digests (sha256, git commits) and run ids are computed
# by us, never typed by a user. A kept span still loses a secret long enough to be a real one.
ALWAYS_KEPT = (
    r"(?<![0-9A-Fa-f])(?:[0-9a-f]{64}|[0-9a-f]{40})(?![0-9A-Fa-f])",
    r"(?<![a-z0-9-])[a-z0-9][a-z0-9-]*_v[0-9]+(?![0-9])",
)
LONG_SECRET = 12

ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda value: html.escape(value, quote=True),
    lambda value: html.escape(value, quote=False),
    lambda value: json.dumps(value)[1:-1],
    lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    lambda value: urllib.parse.quote(value, safe=""),
    lambda value: urllib.parse.quote(value),
    lambda value: urllib.parse.quote_plus(value),
)
ENCODING_LAYERS = 3


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values worth hiding, longest first so a secret containing another is hidden whole.

    A multi-line value (a PEM key) is hidden line by line too, wherever its lines stand.
    """
    env = os.environ if environ is None else environ
    values: set[str] = set()
    for name, value in env.items():
        if SECRET_NAME.search(name):
            values.update(part for part in (value, *value.splitlines()) if _worth_hiding(part))
    return sorted(values, key=len, reverse=True)


def _worth_hiding(value: str) -> bool:
    value = value.strip()
    return len(value) >= MIN_SECRET_LENGTH and value.lower() not in NOT_SECRET_VALUES


@cache
def encoded_forms(value: str) -> frozenset[str]:
    """``value`` as it can appear in our files: raw, escaped, URL-encoded, base64, layered."""
    forms = {value}
    layer = {value}
    for _ in range(ENCODING_LAYERS):
        layer = {encode(form) for form, encode in product(layer, ENCODINGS)} - forms
        forms |= layer
    raw = value.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode("ascii").rstrip("="))
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


class Redactor:
    """Hides ``secrets`` in text and JSON-like data, leaving spans that match ``keep`` alone."""

    def __init__(self, secrets: Iterable[str], keep: Sequence[str] = ()) -> None:
        forms = {form for value in secrets for form in encoded_forms(value)}
        self.forms = sorted(forms, key=len, reverse=True)
        self.keep = "|".join(f"(?:{pattern})" for pattern in (*keep, *ALWAYS_KEPT))

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]``, kept spans left as they are."""
        present = [form for form in self.forms if form in text]
        if not present:
            return text
        found = list(re.finditer("|".join(re.escape(form) for form in present), text))
        short = any(len(match.group()) < LONG_SECRET for match in found)
        kept = [match.span() for match in re.finditer(self.keep, text)] if short else []
        pieces, done = [], 0
        for match in found:
            start, end = match.span()
            if len(match.group()) < LONG_SECRET and any(a <= start and end <= b for a, b in kept):
                continue  # inside a name or digest of our own: not the secret, and kept whole
            pieces += [text[done:start], REDACTED]
            done = end
        return "".join(pieces) + text[done:]

    def data(self, data: Any) -> Any:
        """JSON-like ``data`` with secrets hidden in string values; keys and numbers untouched."""
        if not self.forms:
            return data
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {key: self.data(value) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.data(item) for item in data]
        return data


def redactor(keep: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor for the secrets of ``environ`` (the process environment by default)."""
    return Redactor(secret_values(environ), keep)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret value replaced by ``[REDACTED]``."""
    return redactor(environ=environ).text(text)
