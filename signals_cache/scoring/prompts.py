"""Versioned prompt templates and their rendering through a tokenizer's chat template.

A template's ``version`` (e.g. ``"bars-v1"``) is part of the signal-cache key: change any text
of a template and register it under a new version, never edit a registered one in place.

The system text of a template is long and identical for every prompt rendered from it, so the
rendered prompts share one prefix whose KV the scorer can reuse; only the short user message
differs. The assistant's answer is exactly one label word (:func:`answer_text`).
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from llmbt.errors import ConfigError, DataError, LlmbtError, did_you_mean, unknown_name_error
from llmbt.signals_cache.scoring.features import DECIMALS, bar_features, valid_mask
from llmbt.signals_cache.scoring.labels import LABEL_ALIASES, LABELS
from llmbt.signals_cache.scoring.prompt_variants import BAR_WORDINGS, HEADLINE_WORDINGS


class ChatTokenizer(Protocol):
    """Anything with a Hugging Face style ``apply_chat_template``."""

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class PromptTemplate:
    """One versioned prompt.

    Attributes:
        name: the signal mode it serves, ``"bars"`` or ``"headlines"``.
        version: unique identifier, part of the cache key (``"bars-v1"``).
        system: the shared instruction text (identical for every prompt).
        user: ``str.format`` pattern of the user message; its fields are required by render.
        features_style: how a bar template shows its ``features`` field, which callers always
            pass as canonical ``name: value`` lines (:func:`format_features`): ``"lines"`` keeps
            them, ``"row"`` shows only the values, space-separated in :data:`DECIMALS` order
            (the names are explained once in the shared system text, so each prompt's own
            tokens, the part that cannot reuse the prefix KV, are about 2.5x fewer).
    """

    name: str
    version: str
    system: str
    user: str
    features_style: str = "lines"

    def __post_init__(self) -> None:
        if self.features_style not in FEATURE_STYLES:
            raise ConfigError(
                f"features_style {self.features_style!r} of template {self.version!r} must be "
                f"one of {FEATURE_STYLES}."
            )

    @property
    def fields(self) -> frozenset[str]:
        """Names of the placeholders in :attr:`user`."""
        return frozenset(f for _, f, _, _ in string.Formatter().parse(self.user) if f)


#: Ways a bar template can show its features (see :class:`PromptTemplate`).
FEATURE_STYLES = ("lines", "row")

#: Registered templates by version.
TEMPLATES: dict[str, PromptTemplate] = {}


def register(template: PromptTemplate) -> PromptTemplate:
    """Add ``template`` to :data:`TEMPLATES`; a version can be registered only once."""
    if template.version in TEMPLATES:
        raise ConfigError(
            f"prompt template version {template.version!r} is already registered; "
            "give the changed template a new version (e.g. bump -v1 to -v2)."
        )
    TEMPLATES[template.version] = template
    return template


def get_template(version: str) -> PromptTemplate:
    """The registered template with this version (``"bars-v1"``)."""
    if version not in TEMPLATES:
        raise unknown_name_error("prompt template", version, TEMPLATES, cls=ConfigError)
    return TEMPLATES[version]


ANSWER_RULE = (
    "Reply with exactly one word, in lower case, with no punctuation and no explanation: "
    "bullish, bearish or neutral."
)

_BARS_SYSTEM = f"""You are a disciplined quantitative market analyst. You receive the technical \
features of one price bar of a traded instrument, computed only from that bar and the bars \
before it, and you judge the likely direction of the price over the next few bars.

The features are:
- ret_1, ret_5, ret_20: percent return of the close over the last 1, 5 and 20 bars.
- rsi_14: Wilder relative strength index over 14 bars (0 to 100; above 70 is overbought, below \
30 is oversold).
- macd_hist: MACD histogram (12, 26, 9) as a percent of the close; positive means upward momentum.
- dist_sma20, dist_sma50: percent distance of the close above its 20-bar and 50-bar simple \
moving averages (negative means below).
- atr_14: average true range over 14 bars as a percent of the close (volatility).
- bb_pctb: Bollinger %B (20 bars, 2 standard deviations); 0 is the lower band, 1 the upper band.
- vol_ratio: volume of the bar divided by its 20-bar average volume; n/a when there is no volume.

Answer bullish if the features point to a rise, bearish if they point to a fall, and neutral \
when the evidence is mixed, weak or the move is likely to be small. Judge only from the \
features given; do not assume any news.

{ANSWER_RULE}"""

_HEADLINES_SYSTEM = f"""You are a disciplined financial news analyst. You receive one news \
headline about a traded instrument and you judge its likely effect on that instrument's price \
over the next few days.

Answer bullish if the headline is good news for the price (for example earnings above \
expectations, raised guidance, new contracts, upgrades), bearish if it is bad news (for example \
losses, lowered guidance, lawsuits, downgrades, fraud) and neutral when it is routine, already \
expected, ambiguous or unrelated to the price. Judge only from the headline given.

{ANSWER_RULE}"""

_BARS_V2_SYSTEM = f"""You are a disciplined quantitative market analyst. You receive the technical \
features of one price bar of a traded instrument, computed only from that bar and the bars \
before it, and you judge the likely direction of the price over the next few bars.

The message gives the symbol, then one line of ten numbers separated by spaces, always in this \
order:
1. ret_1, 2. ret_5, 3. ret_20: percent return of the close over the last 1, 5 and 20 bars.
4. rsi_14: Wilder relative strength index over 14 bars (0 to 100; above 70 is overbought, below \
30 is oversold).
5. macd_hist: MACD histogram (12, 26, 9) as a percent of the close; positive means upward momentum.
6. dist_sma20, 7. dist_sma50: percent distance of the close above its 20-bar and 50-bar simple \
moving averages (negative means below).
8. atr_14: average true range over 14 bars as a percent of the close (volatility).
9. bb_pctb: Bollinger %B (20 bars, 2 standard deviations); 0 is the lower band, 1 the upper band.
10. vol_ratio: volume of the bar divided by its 20-bar average volume; n/a when there is no volume.

Answer bullish if the features point to a rise, bearish if they point to a fall, and neutral \
when the evidence is mixed, weak or the move is likely to be small. Judge only from the \
features given; do not assume any news.

{ANSWER_RULE}"""

BARS_V1 = register(PromptTemplate("bars", "bars-v1", _BARS_SYSTEM, "Symbol: {symbol}\n{features}"))
#: The default bar template: same features as bars-v1, values only (a shorter per-prompt part).
BARS_V2 = register(
    PromptTemplate("bars", "bars-v2", _BARS_V2_SYSTEM, "Symbol: {symbol}\n{features}", "row")
)
HEADLINES_V1 = register(
    PromptTemplate(
        "headlines", "headlines-v1", _HEADLINES_SYSTEM, "Symbol: {symbol}\nHeadline: {headline}"
    )
)
#: The universe template: the headline alone, without the symbol, so a headline tagged to several
#: symbols (market-wide stories) is one prompt, scored once and counted for each symbol.
HEADLINES_V2 = register(
    PromptTemplate("headlines", "headlines-v2", _HEADLINES_SYSTEM, "Headline: {headline}")
)
_FEW_SHOT = """

Three worked examples (illustrative values, not real bars):
3.1 6.5 9.8 71 0.45 4.2 8.9 1.6 0.9 1.8 -> bullish
-2.7 -6.1 -11.4 27 -0.52 -5.3 -9.8 2.9 0.1 2.2 -> bearish
0.2 -0.4 0.8 51 0.01 0.3 1.1 1.2 0.5 0.9 -> neutral"""

#: Few-shot variant of bars-v2 (three worked examples in the shared system text; the per-prompt
#: part is unchanged, so prefix reuse keeps its cost): the seed's zero-shot vs few-shot comparison.
_FEWSHOT_SYSTEM = _BARS_V2_SYSTEM.replace("\n\n" + ANSWER_RULE, _FEW_SHOT + "\n\n" + ANSWER_RULE)
BARS_FEWSHOT_V1 = register(PromptTemplate(
    "bars", "bars-fewshot-v1", _FEWSHOT_SYSTEM, "Symbol: {symbol}\n{features}", "row"))

#: Instruction variations (``bt dataset build --augment instructions``): canonical version → the
#: versions of its paraphrases. Training may render examples with them; scoring never does.
VARIATIONS: dict[str, tuple[str, ...]] = {}
_VARIANT_OF: dict[str, str] = {}


def register_variation(base: str, template: PromptTemplate) -> PromptTemplate:
    """Register ``template`` as a paraphrase of the registered ``base`` template: same mode,
    same fields and feature style, system text ending with the same answer rule."""
    canonical = get_template(base)
    same = (template.name, template.fields, template.features_style) == (
        canonical.name, canonical.fields, canonical.features_style)
    if not same or not template.system.endswith(ANSWER_RULE) or base in _VARIANT_OF:
        raise ConfigError(f"{template.version!r} cannot vary {base!r}: keep its mode, fields, "
                          "feature style and closing answer rule; vary a canonical template.")
    register(template)
    VARIATIONS[base] = (*VARIATIONS.get(base, ()), template.version)
    _VARIANT_OF[template.version] = base
    return template


def variation_base(version: str) -> str | None:
    """The canonical template ``version`` paraphrases, or None when it is no variation."""
    return _VARIANT_OF.get(version)


def _paraphrase(base: PromptTemplate, number: int, role: str, decision: str) -> PromptTemplate:
    """``base`` with its role and decision paragraphs replaced (any paragraphs between them, the
    bar feature list, kept verbatim)."""
    middle = base.system.split("\n\n")[1:-2]
    system = "\n\n".join([role, *middle, decision, ANSWER_RULE])
    return register_variation(base.version, PromptTemplate(
        base.name, f"{base.version}-alt{number}", system, base.user, base.features_style))


def _register_paraphrases() -> None:
    """Register the paraphrases of :mod:`~llmbt.signals_cache.scoring.prompt_variants`."""
    for base, wordings in ((HEADLINES_V1, HEADLINE_WORDINGS), (HEADLINES_V2, HEADLINE_WORDINGS),
                           (BARS_V2, BAR_WORDINGS)):
        for number, (role, decision) in enumerate(wordings, 1):
            _paraphrase(base, number, role, decision)


_register_paraphrases()


#: The template each signal mode uses unless a run names another.
DEFAULT_TEMPLATES: dict[str, str] = {"bars": "bars-v2", "headlines": "headlines-v1"}


def template_for(mode: str, version: str | None = None) -> PromptTemplate:
    """The template ``version`` (or the mode's default), checked to serve ``mode``.

    Raises:
        ConfigError: unknown mode or version, or a template of another mode.
    """
    if mode not in DEFAULT_TEMPLATES:
        raise unknown_name_error("signal mode", mode, DEFAULT_TEMPLATES, cls=ConfigError)
    template = get_template(version or DEFAULT_TEMPLATES[mode])
    if template.name != mode:
        modes = sorted(v for v, t in TEMPLATES.items() if t.name == mode)
        raise ConfigError(f"prompt {template.version!r} is a {template.name} template; "
                          f"for {mode} use one of {modes}.")
    return template


def render_messages(template: PromptTemplate, **fields: Any) -> list[dict[str, str]]:
    """The system and user messages of one prompt (for dataset export).

    Raises:
        ConfigError: a field of the template is missing, or an unknown field is given.
    """
    missing = sorted(template.fields - fields.keys())
    extra = sorted(fields.keys() - template.fields)
    if missing or extra:
        raise ConfigError(
            f"template {template.version!r} needs fields {sorted(template.fields)}; "
            f"missing {missing}, unknown {extra}."
        )
    values = {k: str(v) for k, v in fields.items()}
    if template.features_style == "row" and "features" in values:
        values["features"] = _as_row(values["features"])
    user = template.user.format(**values)
    return [{"role": "system", "content": template.system}, {"role": "user", "content": user}]


def render(template: PromptTemplate, tokenizer: ChatTokenizer, **fields: Any) -> str:
    """The full prompt text, ready for the model to generate the label word."""
    text = tokenizer.apply_chat_template(
        render_messages(template, **fields), tokenize=False, add_generation_prompt=True
    )
    if not isinstance(text, str):
        raise ConfigError(f"tokenizer.apply_chat_template returned {type(text).__name__}, not str.")
    return text


def answer_text(label: str) -> str:
    """The assistant's answer for ``label`` (aliases such as ``"positive"`` are accepted)."""
    key = str(label).strip().lower()
    if key not in LABEL_ALIASES:
        raise LlmbtError(
            f"unknown label {label!r}.{did_you_mean(key, LABEL_ALIASES)} "
            f"Use one of {', '.join(LABELS)} (or an alias: {', '.join(sorted(LABEL_ALIASES))})."
        )
    return LABEL_ALIASES[key]


def format_features(row: pd.Series | dict[str, float]) -> str:
    """One ``name: value`` line per feature, in :data:`DECIMALS` order (NaN → ``n/a``)."""
    return "\n".join(
        f"{name}: {_format_value(row[name], places)}" for name, places in DECIMALS.items()
    )


def bar_prompts(
    prices: pd.DataFrame, symbol: str, template: PromptTemplate, tokenizer: ChatTokenizer,
    at: pd.DatetimeIndex | None = None,
) -> pd.Series:
    """One prompt per valid bar (past warm-up), indexed by bar time (only the bars ``at``, if given).

    Raises:
        DataError: prices fail validation or are too short for the warm-up.
        ConfigError: ``template`` is not a bar template.
    """
    features = bar_features(prices)
    features = features[valid_mask(features)]
    if at is not None:
        features = features[features.index.isin(at)]
    texts = (format_features(row) for _, row in features.iterrows())
    rendered = _render_each(template, tokenizer, symbol, texts, field="features")
    return pd.Series(rendered, index=features.index, dtype=object, name="prompt")


def headline_prompts(
    news_df: pd.DataFrame,
    template: PromptTemplate,
    tokenizer: ChatTokenizer,
    *,
    symbol: str | None = None,
) -> list[str]:
    """One prompt per row of ``news_df`` (column ``headline``; ``symbol`` column or argument).

    Raises:
        DataError: the ``headline`` column is missing, a headline is empty, or no symbol is known.
    """
    if "headline" not in news_df.columns:
        raise DataError(f"news has no 'headline' column; got {list(news_df.columns)}.")
    if "symbol" in news_df.columns:
        symbols = news_df["symbol"].astype(str).tolist()
    elif symbol is not None:
        symbols = [symbol] * len(news_df)
    else:
        raise DataError("news has no 'symbol' column; pass symbol=... to headline_prompts.")
    headlines = [clean_headline(h, i) for i, h in enumerate(news_df["headline"])]
    return [
        render(template, tokenizer, symbol=s, headline=h)
        for s, h in zip(symbols, headlines, strict=True)
    ]


def _render_each(
    template: PromptTemplate,
    tokenizer: ChatTokenizer,
    symbol: str,
    texts: Iterable[str],
    field: str,
) -> list[str]:
    """Render many prompts, rendering each distinct text once."""
    done: dict[str, str] = {}
    out = []
    for text in texts:
        if text not in done:
            done[text] = render(template, tokenizer, symbol=symbol, **{field: text})
        out.append(done[text])
    return out


def _as_row(lines: str) -> str:
    """``"ret_1: 1.9\\nret_5: 2.0"`` → ``"1.9 2.0"`` (names checked against :data:`DECIMALS`)."""
    pairs = [line.split(": ", 1) for line in lines.splitlines()]
    names = [p[0] for p in pairs]
    if names != list(DECIMALS) or any(len(p) != 2 for p in pairs):
        raise ConfigError(
            f"a row-style bar template needs the features as format_features() lines "
            f"({', '.join(DECIMALS)}); got names {names}."
        )
    return " ".join(p[1] for p in pairs)


def _format_value(value: float, places: int) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{float(value) + 0.0:.{places}f}"


def clean_headline(headline: object, position: int) -> str:
    text = " ".join(str(headline).split()) if isinstance(headline, str) else ""
    if not text:
        raise DataError(f"news row {position} has an empty or missing headline; drop that row.")
    return text
