"""Prompt rendering without transformers: a model's chat template and special tokens, kept as plain
JSON and rendered with jinja2 the way transformers renders them.

Rendering a prompt needs only the tokenizer's chat template (a Jinja string) and its named special
tokens, yet loading a tokenizer through transformers imports torch (seconds). The first time the
real tokenizer of a model folder is loaded (:func:`save_chat_template`), both are written to
``llmbt_home()/models/chat_templates/<key>.json``, keyed by the folder and the size and mtime of
its tokenizer files (an edited tokenizer gets a new key); later runs render from that JSON
(:class:`ChatTemplate`), so a fully cached run never imports the ML stack. Never pickled.

The jinja2 environment mirrors ``transformers.utils.chat_template_utils`` (sandboxed,
``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, the ``tojson`` filter and the
``raise_exception`` / ``strftime_now`` / ``dict`` / ``namespace`` globals, the special tokens as
variables); a slow test checks the text is byte-identical to the tokenizer's own.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from llmbt.errors import LlmbtError
from llmbt.paths import llmbt_home
from llmbt.signals_cache.model.hashing import atomic_write_text

#: Files of a model folder that decide its chat template and special tokens.
TOKENIZER_FILES = ("tokenizer_config.json", "chat_template.jinja", "chat_template.json",
                   "special_tokens_map.json", "tokenizer.json", "added_tokens.json")
_FORMAT = 1

#: The plain completion template of base models that have no chat template (GPT-2-style
#: point-in-time families, never instruction-tuned): the system text, the user message, then
#: ``Answer:`` for the label word to follow (scored with its leading space). Versioned: the
#: version is part of such a model's scorer fingerprint; change the text under a new version.
COMPLETION_VERSION = "completion-v1"
COMPLETION_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}{{ 'Answer: ' + message['content'] + eos_token }}"
    "{%- else -%}{{ message['content'] + '\\n\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Answer:' }}{%- endif -%}"
)


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the named special tokens it may use (``bos_token``, ``eos_token``…)."""

    template: str
    special_tokens: dict[str, str] = field(default_factory=dict)

    def apply_chat_template(self, conversation: list[dict[str, Any]], tokenize: bool = False,
                            add_generation_prompt: bool = False, **kwargs: Any) -> str:
        """The conversation as text, as ``tokenizer.apply_chat_template(..., tokenize=False)``.

        Raises:
            LlmbtError: ``tokenize=True`` (this renderer has no vocabulary) or the template
                raised (``raise_exception``).
        """
        if tokenize:
            raise LlmbtError("ChatTemplate renders text only; load the tokenizer to tokenize.")
        from jinja2.exceptions import TemplateError

        messages = [{k: v for k, v in m.items() if v is not None} for m in conversation]
        try:
            return _compiled(self.template).render(
                messages=messages, tools=None, documents=None,
                add_generation_prompt=add_generation_prompt, **{**self.special_tokens, **kwargs})
        except TemplateError as exc:
            raise LlmbtError(f"the model's chat template refused the prompt: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _compiled(template: str) -> Any:
    """The template compiled in a sandbox configured like transformers' chat-template one."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_generation_tag(), loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, dict=dict,
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    return env.from_string(template)


def _generation_tag() -> type:
    """``{% generation %}…{% endgeneration %}`` (assistant-mask markers): renders its body."""
    import jinja2
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_body")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    return Generation


def ensure_template(tokenizer: Any) -> Any:
    """``tokenizer`` with :data:`COMPLETION_TEMPLATE` as its chat template when it has none."""
    if not isinstance(getattr(tokenizer, "chat_template", None), str):
        tokenizer.chat_template = COMPLETION_TEMPLATE
    return tokenizer


def prompt_format(source: str) -> str | None:
    """:data:`COMPLETION_VERSION` when model folder ``source`` has a tokenizer without a chat
    template (read from its tokenizer files, no transformers), else None (its chat template
    renders; or no tokenizer config to read)."""
    folder = Path(source).expanduser()
    config = folder / "tokenizer_config.json"
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file() \
            or not config.is_file():
        return None
    try:
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, json.JSONDecodeError, AttributeError):
        template = None
    return None if template else COMPLETION_VERSION


def template_file(source: str) -> Path | None:
    """Where the chat template of model folder ``source`` is kept (None: not a local folder)."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        return None
    folder = folder.resolve()
    stamps = [[name, p.stat().st_size, p.stat().st_mtime_ns]
              for name in TOKENIZER_FILES if (p := folder / name).is_file()]
    key = hashlib.sha256(json.dumps([_FORMAT, str(folder), stamps]).encode()).hexdigest()[:16]
    return llmbt_home() / "models" / "chat_templates" / f"{key}.json"


def read_chat_template(source: str) -> ChatTemplate | None:
    """The saved chat template of model folder ``source``, or None when none is saved yet."""
    path = template_file(source)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a damaged file is only a cache: the tokenizer is loaded and rewrites it
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    return ChatTemplate(str(data["chat_template"]), dict(data["special_tokens"]))


def save_chat_template(tokenizer: Any, source: str) -> ChatTemplate | None:
    """Keep ``tokenizer``'s chat template and named special tokens as JSON for ``source``.

    Returns None (and saves nothing) when ``source`` is not a local folder or the tokenizer has
    no single chat template.
    """
    path = template_file(source)
    template = getattr(tokenizer, "chat_template", None)
    if path is None or not isinstance(template, str):
        return None
    tokens = {k: str(v) for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    data = {"format": _FORMAT, "source": str(Path(source).expanduser().resolve()),
            "chat_template": template, "special_tokens": tokens}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    return ChatTemplate(template, tokens)
