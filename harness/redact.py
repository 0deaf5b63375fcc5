"""Secret redaction: values of environment variables named like credentials never reach evidence."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

# A credential word ending the name or one of its underscore-separated parts: HF_TOKEN,
# KAGGLE_KEY, AWS_SECRET_ACCESS_KEY, APIKEY; not TOKENIZERS_PARALLELISM.
SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?)S?(_|$)", re.IGNORECASE)
# Values too common to be secrets; hiding them would corrupt unrelated text.
NOT_SECRET_VALUES = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off"})
MIN_SECRET_LENGTH = 4
REDACTED = "[REDACTED]"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values worth hiding, longest first so a secret containing another is hidden whole."""
    env = os.environ if environ is None else environ
    values = {
        value
        for name, value in env.items()
        if SECRET_NAME.search(name)
        and len(value) >= MIN_SECRET_LENGTH
        and value.lower() not in NOT_SECRET_VALUES
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret value replaced by ``[REDACTED]``."""
    return _hide(text, secret_values(environ))


def redact_data(data: Any, environ: Mapping[str, str] | None = None) -> Any:
    """``data`` (JSON-like) with secrets redacted from every string, before it is serialised."""
    secrets = secret_values(environ)
    return _hide_in(data, secrets) if secrets else data


def _hide(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def _hide_in(data: Any, secrets: list[str]) -> Any:
    if isinstance(data, str):
        return _hide(data, secrets)
    if isinstance(data, dict):
        return {_hide_in(k, secrets): _hide_in(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_hide_in(item, secrets) for item in data]
    return data
