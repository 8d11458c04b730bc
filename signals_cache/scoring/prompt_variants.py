"""Instruction variations: paraphrased system texts of the default templates, for training only.

The fine-tuning guide this product follows augments a training set with several wordings of the
same instruction, so that an adapter learns the task rather than one phrasing. Each paraphrase
is a template of its own (``headlines-v1-alt1``…), registered with
:func:`~llmbt.signals_cache.scoring.prompts.register_variation`: same mode, same user message,
same closing answer rule (so the assistant's answer is still one label word), a different role
and decision wording. ``bt dataset build --augment instructions`` renders train examples with
them and records the version on each row; scoring keeps the canonical template.

This module holds the wordings only; :mod:`~llmbt.signals_cache.scoring.prompts` imports them and
registers one template per wording and canonical template.
"""

from __future__ import annotations

#: (role paragraph, decision paragraph) of each headline paraphrase.
HEADLINE_WORDINGS = (
    ("You work as an equity research assistant. Read the single news headline below about a "
     "listed company and decide how it is likely to move that company's share price in the "
     "coming days.",
     "Say bullish when the news should lift the price (beaten forecasts, higher guidance, new "
     "orders, analyst upgrades), bearish when it should weigh on it (losses, cut guidance, legal "
     "trouble, downgrades, fraud) and neutral when it is routine, priced in, unclear or not about "
     "the price. Base your answer on the headline alone."),
    ("Classify the sentiment of a financial news headline for the stock it concerns, from an "
     "investor's point of view, over a horizon of a few trading days.",
     "Positive news for the stock (profits ahead of expectations, raised outlook, contract wins, "
     "upgrades) is bullish; negative news (losses, lowered outlook, litigation, downgrades, fraud) "
     "is bearish; routine, expected, ambiguous or irrelevant news is neutral. Use only the headline."),
    ("As a careful market analyst, judge what one headline about a company means for its share "
     "price over the next few days.",
     "If the headline is good for the price, for instance earnings beating estimates, better "
     "guidance, new business or an upgrade, answer bullish. If it is bad for the price, for "
     "instance a loss, weaker guidance, a lawsuit, a downgrade or fraud, answer bearish. If it is "
     "routine, expected, mixed or unrelated to the price, answer neutral. Rely on the headline only."),
)

#: (role paragraph, decision paragraph) of each bar paraphrase; the feature list is kept verbatim.
BAR_WORDINGS = (
    ("You are a systematic technical analyst. For one price bar of a traded instrument you get "
     "technical indicators computed from that bar and earlier bars only, and you forecast the "
     "direction of the price over the next few bars.",
     "Say bullish when the indicators suggest the price will rise, bearish when they suggest it "
     "will fall, and neutral when the signals conflict, are weak or point to a small move. Use "
     "only these indicators; assume no news."),
    ("Predict the short-term direction of a traded instrument from the technical features of its "
     "latest price bar (computed without any later data), looking a few bars ahead.",
     "Rising price expected: bullish. Falling price expected: bearish. Mixed or weak evidence, or "
     "a likely small move: neutral. Decide from the features alone, without assuming any news."),
    ("As a disciplined quant, read the technical features of one bar of an instrument (built "
     "from that bar and its history only) and judge where the price is headed over the next few "
     "bars.",
     "Answer bullish if the features favour a rise and bearish if they favour a fall; answer "
     "neutral if the picture is mixed or weak, or the move is likely to be small. Judge from the "
     "features given and nothing else."),
)
