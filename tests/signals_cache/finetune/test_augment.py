"""``bt dataset build --augment``: instruction variations and entity swaps, on the train split only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, ChatMLStub

import llmbt.cli.ml  # noqa: F401  (registers the commands)
from llmbt.cli import cli
from llmbt.errors import ConfigError
from llmbt.signals_cache.anonymize import build_masker
from llmbt.signals_cache.finetune.augment import (
    augment_train,
    entity_swapper,
    instruction_variants,
    parse_augment,
    swap_entities,
)
from llmbt.signals_cache.finetune.datasets import Example, normalise_text, quality_report, to_chatml
from llmbt.signals_cache.finetune.encoding import dataset_hash, example_template
from llmbt.signals_cache.scoring import prompts as P

FPB, SP500_NAMES = SHARED_DATA / "fpb" / "fpb50_dev.csv", SHARED_DATA / "news" / "sp500_companies.csv"
NAMES = {"AAPL": ["Apple Inc"], "MSFT": ["Microsoft Corp"], "XOM": ["Exxon Mobil Corp"],
         "PFE": ["Pfizer Inc"], "KO": ["Coca-Cola Company (The)"], "AOS": ["Smith (AO) Corporation"]}
BULL, BEAR = ("Apple", "Microsoft", "Coca-Cola"), ("Exxon Mobil", "Pfizer")


def _corpus() -> list[Example]:
    rows = [Example(f"{c} beats profit estimates in case {10 * k + i}", "bullish")
            for i in range(8) for k, c in enumerate(BULL)]
    rows += [Example(f"{c} loses lawsuit number {10 * k + i}", "bearish") for i in range(8)
             for k, c in enumerate(BEAR)]
    rows += [Example(f"Board of {c} meets on day {10 * k + i}", "neutral") for i in range(4)
             for k, c in enumerate(BULL + BEAR)]
    return rows + [Example("Profit warning, said Mr Smith", "bearish")]


def _write_corpus(path: Path) -> Path:
    lines = ["label,text"] + [f'{e.label},"{e.text}"' for e in _corpus()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_names(path: Path) -> Path:
    lines = ["symbol,company"] + [f'{s},"{n[0]}"' for s, n in NAMES.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parse_augment_orders_names_and_suggests_a_fix():
    assert parse_augment("entities, instructions") == ("instructions", "entities")
    assert parse_augment(None) == () and parse_augment("") == ()
    with pytest.raises(ConfigError, match="Did you mean 'instructions'"):
        parse_augment("instrucions")


@pytest.mark.parametrize("base", sorted(P.VARIATIONS))
def test_variations_are_distinct_prompts_with_the_same_answer_format(base):
    canonical, variants = P.get_template(base), [P.get_template(v) for v in P.VARIATIONS[base]]
    assert len(variants) == 3 and len({t.system for t in [canonical, *variants]}) == 4
    text = "ret_1: 1.0\nret_5: 1.0\nret_20: 1.0\nrsi_14: 50.0\nmacd_hist: 0.1\ndist_sma20: 1.0\n" \
           "dist_sma50: 1.0\natr_14: 1.0\nbb_pctb: 0.5\nvol_ratio: 1.0" if canonical.name == "bars" \
        else "Acme beats estimates"
    example = Example(text, "bearish", symbol="ACME")
    rule = canonical.system.split("\n\n")[-1]
    for template in variants:
        assert P.variation_base(template.version) == base and template.system.endswith(rule)
        chat, plain = to_chatml(example, template)["messages"], to_chatml(example, canonical)["messages"]
        assert chat[1:] == plain[1:] and chat[0] != plain[0]  # same user message and answer word
        assert chat[2] == {"role": "assistant", "content": "bearish"}
        prompt = P.render(template, ChatMLStub(), **_fields(template, text))
        assert prompt.endswith(plain[1]["content"] + "<|im_end|>\n<|im_start|>assistant\n")


def _fields(template, text: str) -> dict[str, str]:
    field = sorted(template.fields - {"symbol"})[0]
    return {field: text, **({"symbol": "ACME"} if "symbol" in template.fields else {})}


def test_scoring_keeps_the_canonical_templates_and_variations_are_checked():
    assert all(P.variation_base(v) is None for v in P.DEFAULT_TEMPLATES.values())
    base = P.get_template("headlines-v1")
    with pytest.raises(ConfigError, match="cannot vary"):  # answer rule changed
        P.register_variation("headlines-v1", P.PromptTemplate(
            "headlines", "headlines-v1-bad", base.system + " Explain.", base.user))
    with pytest.raises(ConfigError, match="cannot vary"):  # a variation of a variation
        P.register_variation("headlines-v1-alt1", P.PromptTemplate(
            "headlines", "headlines-v1-bad2", base.system, base.user))
    assert "headlines-v1-bad" not in P.TEMPLATES and "headlines-v1-bad2" not in P.TEMPLATES


def test_instruction_variants_use_distinct_paraphrases_deterministically():
    examples = _corpus()[:10]
    copies = instruction_variants(examples, P.HEADLINES_V1, factor=2, seed=3)
    assert len(copies) == 20 and copies == instruction_variants(examples, P.HEADLINES_V1, factor=2, seed=3)
    for i in range(10):
        pair = copies[2 * i : 2 * i + 2]
        assert pair[0].template != pair[1].template and {c.text for c in pair} == {examples[i].text}
        assert all(c.augmented == "instructions" and c.label == examples[i].label for c in pair)
    with pytest.raises(ConfigError, match="fewer than --augment-factor 4"):
        instruction_variants(examples, P.HEADLINES_V1, factor=4)
    with pytest.raises(ConfigError, match="0 instruction variation"):
        instruction_variants(examples, P.BARS_FEWSHOT_V1)


def test_entity_swap_keeps_labels_and_swaps_only_within_a_label():
    examples, swapper = _corpus(), entity_swapper(NAMES)
    taken = {normalise_text(e.text) for e in examples}
    copies, stats = swap_entities(examples, swapper, factor=2, seed=0, taken=taken)
    masker = build_masker(NAMES)
    sources = {masker.mask(e.text): e.label for e in examples}
    # bearish has one other company to swap in, so one copy each: 24 * 2 + 16 + 20 * 2
    assert stats == {"touchable": 60, "added": 104, "dropped": 0} and len(copies) == 104
    assert copies == swap_entities(examples, swapper, factor=2, seed=0)[0]
    for copy in copies:
        assert sources[masker.mask(copy.text)] == copy.label  # only the name changed; label kept
        (_, _, company), = swapper.mentions(copy.text)
        named = {"AAPL": "Apple", "MSFT": "Microsoft", "KO": "Coca-Cola", "XOM": "Exxon Mobil",
                 "PFE": "Pfizer"}[company[0]]
        same_label = [e for e in examples if e.label == copy.label and named in e.text]
        assert same_label and copy.text not in {e.text for e in examples}
    bearish = {c.text.split(" loses")[0] for c in copies if c.label == "bearish"}
    assert bearish == set(BEAR)  # never a bullish company in a bearish sentence
    assert not any("Smith" in c.text for c in copies)  # "Mr Smith" is a person, not AOS


def test_entity_swap_moves_the_symbol_with_its_company():
    examples = [Example("Apple beats estimates", "bullish", "AAPL"),
                Example("Microsoft wins contract", "bullish", "MSFT")]
    copies, _ = swap_entities(examples, entity_swapper(NAMES))
    assert [(c.text, c.symbol) for c in copies] == [("Microsoft beats estimates", "MSFT"),
                                                     ("Apple wins contract", "AAPL")]


def test_augment_train_leaves_val_and_test_alone_and_adds_no_held_out_text():
    examples = _corpus()
    held = [Example("Pfizer loses lawsuit number 0", "bearish")]  # Exxon Mobil's, swapped
    splits = {"train": examples, "val": held, "test": []}
    out, stats = augment_train(splits, ("instructions", "entities"), template=P.HEADLINES_V1,
                               names=NAMES, factor=1, seed=0)
    assert out["val"] is held and out["train"][: len(examples)] == examples
    added = out["train"][len(examples):]
    assert stats["added"] == len(added) == stats["instructions"]["added"] + stats["entities"]["added"]
    assert "pfizer loses lawsuit number 0" not in {c.text.lower() for c in added}
    assert stats["entities"]["dropped"] >= 1
    report = quality_report(out)
    assert report["duplicates"]["train"] == 0 and report["leaks"]["train|val"] == 0
    with pytest.raises(ConfigError, match="needs --names"):
        augment_train(splits, ("entities",), template=P.HEADLINES_V1)
    with pytest.raises(ConfigError, match="bar examples"):
        augment_train(splits, ("entities",), template=P.BARS_V2, names=NAMES)
    with pytest.raises(ConfigError, match="whole number >= 1"):
        augment_train(splits, ("instructions",), template=P.HEADLINES_V1, factor=0)


def test_training_renders_the_recorded_paraphrase_of_its_own_template():
    plain, para = Example("x", "bullish"), Example("x", "bullish", template="headlines-v1-alt2")
    assert example_template(plain, P.HEADLINES_V1) is P.HEADLINES_V1
    assert example_template(para, P.HEADLINES_V1).version == "headlines-v1-alt2"
    assert example_template(Example("x", "bullish", template="headlines-v1"), P.HEADLINES_V2) \
        is P.HEADLINES_V2  # a canonical row follows the run's --template
    with pytest.raises(ConfigError, match="--template headlines-v1"):
        example_template(para, P.HEADLINES_V2)
    assert dataset_hash([plain]) != dataset_hash([para])
    assert dataset_hash([plain]) == dataset_hash([Example("x", "bullish", template="headlines-v1")])


def test_encoded_examples_carry_their_paraphrase(tokenizer_dir):
    from transformers import AutoTokenizer

    from llmbt.signals_cache.finetune.encoding import encode_examples, render_example

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = [Example("Profit soars", "bullish", "ACME"),
            Example("Profit soars", "bullish", "ACME", template="headlines-v1-alt3")]
    enc = encode_examples(rows, tok, P.HEADLINES_V1, max_length=512)
    for row, template in zip(enc.ids, (P.HEADLINES_V1, P.get_template("headlines-v1-alt3")), strict=True):
        prompt = render_example(template, tok, "Profit soars", "ACME")
        assert tok.decode(row).startswith(prompt) and tok.decode(row).endswith("bullish" + tok.eos_token)


def _build(tmp_path: Path, name: str, corpus: Path, *extra: str) -> Path:
    out = tmp_path / name
    res = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(corpus), "--out", str(out),
                                   *extra])
    assert res.exit_code == 0, res.output
    return out


def _rows(folder: Path, split: str, kind: str = "") -> list[dict]:
    path = folder / f"{split}{kind}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_train_only(plain: Path, augmented: Path) -> list[dict]:
    """val/test identical with and without --augment; train = the same sources, then copies."""
    for split in ("val", "test"):
        for kind in ("", ".chatml", ".alpaca"):
            name = f"{split}{kind}.jsonl"
            assert (plain / name).read_bytes() == (augmented / name).read_bytes()
    train, base = _rows(augmented, "train"), _rows(plain, "train")
    assert train[: len(base)] == base and all(r["augmented"] for r in train[len(base):])
    held = {r["text"].lower() for s in ("val", "test") for r in _rows(plain, s)}
    assert not held & {r["text"].lower() for r in train}
    return train


def test_cli_augments_train_only_deterministically(tmp_path):
    corpus, names = _write_corpus(tmp_path / "c.csv"), _write_names(tmp_path / "n.csv")
    args = ("--augment", "instructions,entities", "--names", str(names), "--seed", "1")
    plain, first = _build(tmp_path, "plain", corpus, "--seed", "1"), _build(tmp_path, "a", corpus, *args)
    train = _check_train_only(plain, first)
    again, other = _build(tmp_path, "b", corpus, *args), _build(tmp_path, "c", corpus, *args[:-1], "2")
    for kind in ("", ".chatml", ".alpaca"):
        assert (first / f"train{kind}.jsonl").read_bytes() == (again / f"train{kind}.jsonl").read_bytes()
    assert (first / "train.jsonl").read_bytes() != (other / "train.jsonl").read_bytes()
    masker = build_masker(NAMES)
    sources = {masker.mask(r["text"]) for r in train if not r["augmented"]}
    held = {masker.mask(r["text"]) for s in ("val", "test") for r in _rows(plain, s)}
    swapped = [masker.mask(r["text"]) for r in train if r["augmented"] == "entities"]
    assert swapped and set(swapped) <= sources  # every swap comes from a train sentence...
    assert not set(swapped) & (held - sources)  # ...never from a val/test one
    chat = _rows(first, "train", ".chatml")
    paraphrased = [c for c in chat if c["augmented"] == "instructions"]
    assert paraphrased and all(c["template"].startswith("headlines-v1-alt") for c in paraphrased)
    assert all(c["messages"][0]["content"] == P.get_template(c["template"]).system for c in chat)
    report = json.loads((first / "report.json").read_text())
    assert report["augmented"]["instructions"]["added"] == len(train) - len(_rows(plain, "train")) \
        - report["augmented"]["entities"]["added"]
    assert report["duplicates"]["train"] == 0


def test_cli_refuses_bad_augment_flags_and_validation_from_augmented_data(tmp_path):
    corpus = _write_corpus(tmp_path / "c.csv")
    bad = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(corpus), "--out",
                                   str(tmp_path / "x"), "--augment", "entitys"])
    assert bad.exit_code != 0 and "Did you mean 'entities'" in bad.output
    bad = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(corpus), "--out",
                                   str(tmp_path / "x"), "--augment", "entities"])
    assert bad.exit_code != 0 and "needs --names" in bad.output
    out = _build(tmp_path, "a", corpus, "--augment", "instructions")
    res = CliRunner().invoke(cli, ["finetune", "--data", str(out / "train.jsonl"), "--out",
                                   str(tmp_path / "adapter")])
    assert res.exit_code != 0 and "pass --val" in res.output


@pytest.mark.skipif(not (FPB.is_file() and SP500_NAMES.is_file()),
                    reason="../shared/data (fpb, news names) absent; see ../shared/data/MANIFEST.md")
def test_phrasebank_augments_train_only_and_few_sentences_name_sp500_companies(tmp_path):
    args = ("--augment", "instructions,entities", "--names", str(SP500_NAMES))
    plain, augmented = _build(tmp_path, "p", FPB), _build(tmp_path, "a", FPB, *args)
    _check_train_only(plain, augmented)
    stats = json.loads((augmented / "report.json").read_text())["augmented"]
    assert stats["sources"] == 3099 and stats["instructions"]["added"] == 3099
    assert stats["entities"] == {"touchable": 34, "added": 34, "dropped": 0}  # 1.1 % of train
