"""Signal cache (diskcache) and the cached scoring pipeline, including kill-and-resume."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import diskcache
import numpy as np
import pytest

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.cache import STATS_KEY, SignalCache, cache_key
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.pipeline import ScoreResult, score_with_cache

FP = "base=smollm2-135m;adapter=none"
TV = "bars-v1"


def fake_probs(prompt: str) -> np.ndarray:
    """Deterministic probabilities from a hash of the prompt."""
    digest = hashlib.sha256(prompt.encode()).digest()
    raw = np.array([1 + digest[0], 1 + digest[1], 1 + digest[2]], dtype=np.float32)
    return raw / raw.sum()


class FakeScorer:
    """Counts what it scores; raises after ``fail_after`` batches to simulate a killed run."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.batches: list[list[str]] = []

    @property
    def items(self) -> list[str]:
        return [p for batch in self.batches for p in batch]

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        assert len(prompts) <= batch_size
        self.batches.append(list(prompts))
        return np.stack([fake_probs(p) for p in prompts])


@pytest.fixture
def cache(tmp_path) -> SignalCache:
    with SignalCache(tmp_path / "signals") as opened:
        yield opened


def make_prompts(n: int) -> list[str]:
    return [f"Symbol: T\nret_1: {i * 0.1:.1f}" + "x" * (i % 7) for i in range(n)]


def run(prompts, scorer, cache, **kwargs) -> ScoreResult:
    kwargs = {"fingerprint": FP, "template_version": TV, "progress": False, **kwargs}
    return score_with_cache(prompts, scorer, cache, **kwargs)


# --- keys and storage -----------------------------------------------------------------------


def test_key_is_sha256_of_model_template_and_prompt():
    key = cache_key(FP, TV, "p")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key(FP, TV, "p")
    others = {cache_key("other", TV, "p"), cache_key(FP, "bars-v2", "p"), cache_key(FP, TV, "q")}
    assert key not in others and len(others) == 3


def test_put_get_round_trip_is_exact(cache):
    prompts = ["a", "b", "c"]
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=3)
    cache.put_many(FP, TV, prompts, probs)
    found = cache.get_many(FP, TV, ["c", "zzz", "a"])
    assert sorted(found) == [0, 2]
    assert np.array_equal(found[0], probs[2]) and np.array_equal(found[2], probs[0])
    assert cache.get_many("other-model", TV, prompts) == {}


def test_values_are_json_strings_tagged_with_the_model(cache, tmp_path):
    cache.put_many(FP, TV, ["a"], [[0.5, 0.25, 0.25]])
    raw = diskcache.Cache(str(tmp_path / "signals"))
    value, tag = raw.get(cache_key(FP, TV, "a"), tag=True)
    raw.close()
    assert isinstance(value, str) and json.loads(value) == [0.5, 0.25, 0.25]
    assert tag == FP


def test_put_many_rejects_bad_probabilities(cache):
    with pytest.raises(LlmbtError, match=r"shape \(2, 3\), expected \(1, 3\)"):
        cache.put_many(FP, TV, ["a"], np.ones((2, 3)) / 3)
    with pytest.raises(LlmbtError, match="NaN"):
        cache.put_many(FP, TV, ["a"], [[np.nan, 0.5, 0.5]])
    assert cache.stats()["entries"] == 0


def test_clear_one_model_or_everything(cache):
    cache.put_many("m1", TV, ["a", "b"], np.full((2, 3), 1 / 3))
    cache.put_many("m2", TV, ["a"], np.full((1, 3), 1 / 3))
    cache.record_run(1, 2)
    assert cache.clear(model="m1") == 2
    assert cache.get_many("m1", TV, ["a", "b"]) == {} and len(cache.get_many("m2", TV, ["a"])) == 1
    assert cache.stats()["entries"] == 1 and cache.stats()["last_hits"] == 1
    cache.clear()
    assert cache.stats()["entries"] == 0


def test_stats_and_record_run(cache):
    empty = cache.stats()
    assert empty["entries"] == 0 and empty["last_hits"] is None and empty["total_hits"] == 0
    cache.put_many(FP, TV, ["a", "b"], np.full((2, 3), 1 / 3))
    cache.record_run(hits=3, misses=2)
    cache.record_run(hits=5, misses=0)
    stats = cache.stats()
    assert stats["entries"] == 2 and stats["size_bytes"] > 0
    assert (stats["last_hits"], stats["last_misses"]) == (5, 0)
    assert (stats["total_hits"], stats["total_misses"]) == (8, 2)
    raw = diskcache.Cache(str(cache.directory))
    assert isinstance(raw[STATS_KEY], str)
    raw.close()


def test_stats_and_bt_cache_stats_give_the_last_run_as_a_utc_date(cache, monkeypatch):
    from click.testing import CliRunner

    from llmbt.cli import cli
    from llmbt.signals_cache import cache as cache_module

    with monkeypatch.context() as patch:
        patch.setattr(cache_module.time, "time", lambda: 1796598369.29719)
        cache.record_run(hits=603, misses=0)
    assert cache.stats()["last_run_at"] == "2026-12-06T23:06:09+00:00"
    res = CliRunner().invoke(cli, ["cache", "stats", "--cache-dir", str(cache.directory)])
    assert res.exit_code == 0, res.output
    assert "last_run_at    2026-12-06T23:06:09+00:00\n" in res.output
    assert "1796598369" not in res.output


def test_default_directory_and_persistence(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    with SignalCache() as first:
        assert first.directory == tmp_path / "home" / "signals"
        first.put_many(FP, TV, ["a"], [[0.2, 0.3, 0.5]])
    with SignalCache(tmp_path / "home" / "signals") as again:
        assert again.get_many(FP, TV, ["a"])[0].tolist() == [0.2, 0.3, 0.5]


def _writer(directory: str, name: str, barrier, n: int) -> None:
    """Child process: write own and shared entries batch by batch, reading between writes."""
    barrier.wait()
    with SignalCache(Path(directory)) as cache:
        for start in range(0, n, 10):
            own = [f"{name}-{i}" for i in range(start, start + 10)]
            shared = [f"shared-{i}" for i in range(start, start + 10)]
            cache.put_many(name, TV, own, np.stack([fake_probs(p) for p in own]))
            cache.put_many("shared", TV, shared, np.stack([fake_probs(p) for p in shared]))
            assert len(cache.get_many(name, TV, own)) == 10
            cache.get_many("other", TV, [f"other-{i}" for i in range(n)])
            cache.record_run(hits=1, misses=2)  # read-modify-write of the shared totals


@pytest.mark.parametrize("start_method", ["fork", "spawn"])  # spawn: fresh interpreters, as Ray workers
def test_two_processes_share_one_cache(tmp_path, start_method):
    """Two processes open a new cache folder at once and write disjoint and overlapping keys (same
    values, as two workers scoring one prompt) in interleaved batches: every value reads back
    exactly, and the run totals, updated by both, lose no update."""
    context = multiprocessing.get_context(start_method)
    barrier = context.Barrier(2)
    directory, n = str(tmp_path / "shared-cache"), 200
    workers = [
        context.Process(target=_writer, args=(directory, name, barrier, n))
        for name in ("one", "other")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    with SignalCache(Path(directory)) as cache:
        stats = cache.stats()
        assert stats["entries"] == 3 * n
        assert (stats["total_hits"], stats["total_misses"]) == (2 * n // 10, 4 * n // 10)
        for name in ("one", "other", "shared"):
            prompts = [f"{'shared' if name == 'shared' else name}-{i}" for i in range(n)]
            found = cache.get_many(name, TV, prompts)
            assert all(np.array_equal(found[i], fake_probs(p)) for i, p in enumerate(prompts))


# --- pipeline -------------------------------------------------------------------------------


def test_first_run_scores_everything_second_run_nothing(cache):
    prompts = make_prompts(37)
    first = run(prompts, FakeScorer(), cache, batch_size=8)
    assert (first.hits, first.misses, first.items_scored, first.model_calls) == (0, 37, 37, 5)
    scorer = FakeScorer()
    second = run(prompts, scorer, cache, batch_size=8)
    assert scorer.batches == [] and second.model_calls == 0 and second.hits == 37
    assert np.array_equal(first.probs, second.probs)
    # float32 rows normalised again in float64: equal to float32 rounding
    np.testing.assert_allclose(first.probs, np.stack([fake_probs(p) for p in prompts]), rtol=1e-6)
    stats = cache.stats()
    assert (stats["last_hits"], stats["last_misses"], stats["entries"]) == (37, 0, 37)


def test_duplicates_are_scored_once_and_returned_in_order(cache):
    unique = make_prompts(5)
    prompts = [unique[i] for i in (3, 0, 3, 3, 1, 0, 4, 2, 2)]
    scorer = FakeScorer()
    result = run(prompts, scorer, cache, batch_size=2)
    assert sorted(scorer.items) == sorted(unique)
    assert result.probs.shape == (9, 3) and result.misses == 5
    assert all(np.allclose(result.probs[i], fake_probs(p), rtol=1e-6, atol=0)
               for i, p in enumerate(prompts))


def test_changed_fingerprint_or_template_misses(cache):
    prompts = make_prompts(6)
    run(prompts, FakeScorer(), cache)
    assert run(prompts, FakeScorer(), cache, fingerprint="new-adapter").misses == 6
    assert run(prompts, FakeScorer(), cache, template_version="bars-v2").misses == 6
    assert run(prompts, FakeScorer(), cache).misses == 0


def test_misses_are_batched_by_length(cache):
    prompts = make_prompts(30)
    run(prompts[::3], FakeScorer(), cache)
    scorer = FakeScorer()
    result = run(prompts, scorer, cache, batch_size=4)
    lengths = [len(p) for p in scorer.items]
    assert lengths == sorted(lengths) and result.items_scored == 20 and result.hits == 10
    assert all(len(batch) <= 4 for batch in scorer.batches) and result.model_calls == 5


def test_kill_and_resume_scores_only_the_rest(cache, tmp_path):
    prompts = make_prompts(50)
    with pytest.raises(KeyboardInterrupt):
        run(prompts, FakeScorer(fail_after=3), cache, batch_size=8)
    assert cache.stats()["entries"] == 24
    resumed_scorer = FakeScorer()
    resumed = run(prompts, resumed_scorer, cache, batch_size=8)
    assert len(resumed_scorer.items) == 26 and resumed.hits == 24 and resumed.misses == 26
    assert set(resumed_scorer.items).isdisjoint(cache_items_of_first_batches(prompts, 24))
    with SignalCache(tmp_path / "fresh") as fresh:
        uninterrupted = run(prompts, FakeScorer(), fresh, batch_size=8)
    assert np.array_equal(resumed.probs, uninterrupted.probs)


def cache_items_of_first_batches(prompts: list[str], n: int) -> set[str]:
    """The ``n`` prompts a killed run stored first: the shortest, in stable length order."""
    return set(sorted(prompts, key=len)[:n])


def test_score_confidence_and_frame(cache):
    prompts = make_prompts(4)
    result = run(prompts, FakeScorer(), cache)
    bull, bear = LABELS.index("bullish"), LABELS.index("bearish")
    assert np.allclose(result.score, result.probs[:, bull] - result.probs[:, bear])
    assert np.allclose(result.confidence, result.probs.max(axis=1))
    frame = result.to_frame(index=list("wxyz"))
    columns = [*LABELS, "score", "confidence", "label_mass"]
    assert list(frame.columns) == columns and list(frame.index) == list("wxyz")
    assert result.seconds > 0 and result.items_per_s > 0


def test_empty_input_and_bad_batch_size(cache):
    result = run([], FakeScorer(), cache)
    assert result.probs.shape == (0, 3) and result.model_calls == 0
    with pytest.raises(ConfigError, match="batch_size"):
        run(["a"], FakeScorer(), cache, batch_size=0)


def test_bad_scorer_output_is_rejected_and_not_cached(cache):
    class BadScorer:
        def score(self, prompts, batch_size):
            return np.full((len(prompts), 2), 0.5)

    with pytest.raises(LlmbtError, match=r"shape \(3, 2\)"):
        run(["a", "b", "c"], BadScorer(), cache)
    assert cache.stats()["entries"] == 0


def test_progress_bar_path_runs(cache):
    result = score_with_cache(
        make_prompts(3), FakeScorer(), cache, fingerprint=FP, template_version=TV, progress=True
    )
    assert result.misses == 3


# --- nothing in the cache folder is ever unpickled ------------------------------------------


class _Planted:
    """A pickle whose loading would create ``marker`` (what an attacker would plant)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def _plant(directory: Path, key, value) -> None:
    """Write ``value`` with diskcache's default Disk (which pickles non-primitive values)."""
    raw = diskcache.Cache(str(directory))
    raw.set(key, value)
    raw.close()


@pytest.mark.parametrize("size", [1, 100_000])  # inline in SQLite, and in a .val file
def test_planted_pickle_is_refused_never_run(cache, tmp_path, size):
    marker = tmp_path / "pwned"
    _plant(cache.directory, cache_key(FP, TV, "a"), [_Planted(marker), "x" * size])
    with pytest.raises(LlmbtError, match=rf"{cache.directory}.*bt cache clear"):
        cache.get_many(FP, TV, ["a"])
    assert not marker.exists()
    _plant(cache.directory, STATS_KEY, _Planted(marker))
    with pytest.raises(LlmbtError, match="bt cache clear"):
        cache.stats()
    assert not marker.exists()
    cache.clear()  # the fix the message names works without unpickling anything
    assert cache.get_many(FP, TV, ["a"]) == {} and not marker.exists()


def test_pickled_keys_are_never_read_back(cache, tmp_path):
    marker = tmp_path / "pwned-key"
    _plant(cache.directory, (_Planted(marker),), "[0.2, 0.3, 0.5]")
    with pytest.raises(LlmbtError, match="bt cache clear"):
        cache._cache._disk.get(next(iter(_raw_keys(cache.directory))), False)
    assert not marker.exists()
    with pytest.raises(LlmbtError, match="str"):
        cache._cache.set(("not", "a", "string"), "[1]")


def _raw_keys(directory: Path) -> list:
    import sqlite3

    with sqlite3.connect(directory / "cache.db") as db:
        return [row[0] for row in db.execute("SELECT key FROM Cache WHERE raw = 0")]


def test_clear_never_deletes_outside_the_cache_folder(cache, tmp_path):
    import sqlite3

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with sqlite3.connect(cache.directory / "cache.db") as db:
        db.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, "
            "tag, size, mode, filename, value) VALUES ('k', 1, 0, NULL, 0, 0, NULL, 7, 2, ?, NULL)",
            (str(Path("..") / victim.name),),
        )
    cache.clear()
    assert victim.read_text() == "keep me"


# --- label mass -----------------------------------------------------------------------------


class PartialScorer(FakeScorer):
    """Label probabilities as a model gives them: rows sum to a label mass below 1."""

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        return super().score(prompts, batch_size) * np.array([[0.5], [0.25], [0.8]])[: len(prompts)]


def test_label_mass_is_reported_and_cached_as_plain_numbers(cache):
    prompts = make_prompts(3)
    first = run(prompts, PartialScorer(), cache, batch_size=3)
    np.testing.assert_allclose(first.label_mass, [0.5, 0.25, 0.8], rtol=1e-6)
    np.testing.assert_allclose(first.probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(first.probs[1], fake_probs(prompts[1]), rtol=1e-6)
    raw = diskcache.Cache(str(cache.directory))
    stored = json.loads(raw[cache_key(FP, TV, prompts[1])])
    raw.close()
    assert sum(stored) == pytest.approx(0.25) and all(isinstance(x, float) for x in stored)
    again = run(prompts, FakeScorer(), cache)
    assert again.hits == 3 and np.array_equal(again.label_mass, first.label_mass)
    assert np.array_equal(again.probs, first.probs)
    frame = again.to_frame()
    np.testing.assert_allclose(frame["label_mass"], [0.5, 0.25, 0.8], rtol=1e-6)


def test_scores_of_the_first_token_scorer_are_not_reused(cache):
    """The key holds the scoring version: entries written under the old key layout (first-token
    probabilities, renormalised) are misses, not silently mixed with whole-label scores."""
    old_key = hashlib.sha256(json.dumps([FP, TV, "a"]).encode()).hexdigest()
    _plant(cache.directory, old_key, "[0.2, 0.3, 0.5]")
    assert cache.get_many(FP, TV, ["a"]) == {}
    assert cache_key(FP, TV, "a") != old_key


def test_scorer_rows_above_one_are_rejected(cache):
    class Overfull:
        def score(self, prompts, batch_size):
            return np.full((len(prompts), 3), 0.5)

    with pytest.raises(LlmbtError, match="sum"):
        run(["a"], Overfull(), cache)
    with pytest.raises(LlmbtError, match="sum"):
        cache.put_many(FP, TV, ["a"], [[0.5, 0.5, 0.5]])


@pytest.mark.parametrize("text", ["[0.9, 0.9, 0.9]", "[0, 0, 0]", '{"a": 1}', "[0.1, 0.2]"])
def test_cached_text_that_is_not_label_probabilities_is_refused(cache, text):
    _plant(cache.directory, cache_key(FP, TV, "a"), text)
    with pytest.raises(LlmbtError, match="clear"):
        cache.get_many(FP, TV, ["a"])
