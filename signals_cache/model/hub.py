"""The one line a model the Hugging Face hub did not deliver gets: what failed, not just
"unreachable" (:func:`llmbt.feeds.network.classify` reads transformers' ``OSError`` and the
huggingface_hub or httpx error it was raised from)."""

from __future__ import annotations

from llmbt.feeds.network import AUTH, NOT_FOUND, classify

_MISSING = ("not a valid model identifier", "not a valid repository name")


def hub_failure(source: str, exc: BaseException, fix: str) -> str:
    """``--model SOURCE: the hub ... (first line of the error). FIX``.

    Args:
        source: the hub id that was asked for.
        exc: what transformers raised.
        fix: the advice for working without the hub.
    """
    failure = classify(exc)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = NOT_FOUND if any(m in reason for m in _MISSING) else failure.kind
    says = {NOT_FOUND: " has no such model (check the id; a private one needs `hf auth login`)",
            AUTH: " refused access (a gated or private model: accept its terms on the hub and "
                  "log in with `hf auth login`)"}.get(kind, failure.says())
    return f"--model {source!r}: the hub{says} ({reason}). {fix}"
