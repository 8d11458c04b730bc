"""One scorer identity: every command names its scorer by a ScorerId built once from the flags,
and its fingerprint() is the key the scores are cached under."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.engine.signals import run_request, scorer_fingerprints, scorer_id
from llmbt.errors import ConfigError
from llmbt.signals_cache.model.loading import ModelSpec, model_fingerprint
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.signals import scorer_of
from llmbt.signals_cache.text_scorers.registry import make_scorer, scorer_fingerprint


def test_a_run_s_flags_become_one_scorer_identity() -> None:
    config = RunConfig(strategy="llm_sentiment", quantization="none", precision="bf16",
                       calibrate=False, prompt="bars-v1")
    scorer = scorer_id(config)
    assert scorer == ScorerId(model="smollm2-135m", precision="bf16", calibrate=False,
                              template="bars-v1")
    assert scorer.spec == ModelSpec(precision="bf16", calibrate=False)
    req = run_request(config, mode="bars")
    assert req.scorer is not None and req.scorer == scorer and req.prompt == "bars-v1"


def test_fingerprint_is_the_cache_key_every_command_uses() -> None:
    lm = RunConfig(strategy="llm_sentiment")
    assert scorer_id(lm).fingerprint() == model_fingerprint(ModelSpec(), "")
    assert scorer_of(run_request(lm))[1] == scorer_id(lm).fingerprint() == scorer_fingerprints(lm)[0]
    lex = RunConfig(strategy="llm_sentiment", scorer="lexicon")
    assert scorer_id(lex).fingerprint() == scorer_fingerprint("lexicon", make_scorer("lexicon"))
    assert scorer_fingerprints(lex) == [scorer_id(lex).fingerprint()]
    # the template is part of the identity, not of the cache key (scores are keyed by prompt too)
    assert ScorerId(template="bars-v1").fingerprint() == ScorerId().fingerprint()
    assert ScorerId(precision="bf16").fingerprint() != ScorerId().fingerprint()


def test_a_text_scorer_keeps_its_folder_apart_from_the_model_s_adapter() -> None:
    scorer = ScorerId(kind="lexicon")
    assert scorer.folder is None and scorer.spec.adapter is None and not scorer.is_lm


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "lexicom"}, "lexicon"),
    ({"precision": "bf61"}, "--precision 'bf61'"),
    ({"quantization": "3bit"}, "--quantization '3bit'"),
    ({"model": " "}, "--model"),
])
def test_a_bad_scorer_flag_is_refused_when_the_identity_is_made(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ScorerId(**fields)


def test_bt_cache_clear_names_a_text_scorer_and_a_bf16_model(tmp_path) -> None:
    from llmbt.signals_cache.cache import SignalCache

    cache = tmp_path / "signals"
    keys = {name: scorer_id(RunConfig(strategy="llm_sentiment", **flags)).fingerprint()
            for name, flags in (("lex", {"scorer": "lexicon"}), ("bf16", {"precision": "bf16"}),
                                ("f32", {}))}
    with SignalCache(cache) as store:
        for key in keys.values():
            store.put_many(key, "bars-v2", ["p"], [[0.2, 0.3, 0.5]])
    for flags, gone in ((["--scorer", "lexicon"], "lex"), (["--precision", "bf16"], "bf16")):
        res = CliRunner().invoke(cli, ["cache", "clear", "--cache-dir", str(cache), *flags])
        assert res.exit_code == 0, res.output
        with SignalCache(cache) as store:
            assert not store.get_many(keys[gone], "bars-v2", ["p"])
            assert store.get_many(keys["f32"], "bars-v2", ["p"])
