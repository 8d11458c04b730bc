"""One scorer identity: what scores an item, built once from the flags and used by every command.

``bt run``, ``bt score``, ``bt evaluate``, ``bt compare``, the walk-forward, the studies and
``bt cache clear`` all name their scorer by a :class:`ScorerId`: the model (``--model``, its peft
``--adapter``, ``--quantization``, ``--precision``, the torch dtype and device) or a text scorer
(``--scorer lexicon|embeddings|seqcls`` with its artefact folder), whether the temperature stored
beside the folder applies (``--no-calibration``) and the prompt template (``--prompt``).
:meth:`ScorerId.fingerprint` is the key its scores are cached under: two commands that name the
same scorer read each other's scores, and ``bt cache clear`` removes exactly them. The template is
part of the identity but not of that fingerprint, because the cache keys every score by its
template version and prompt as well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llmbt.signals_cache.model.loading import ModelSpec, model_fingerprint
from llmbt.signals_cache.text_scorers.registry import LM_KIND, check_kind


@dataclass(frozen=True)
class ScorerId:
    """Who scores (see the module docstring); validated when made, naming the flag at fault.

    Attributes:
        kind: ``lm`` (the model reads a rendered prompt) or a registered text scorer.
        model: the base model (a text scorer's too: an embeddings head or classifier sits on it).
        adapter: the model's peft adapter (``lm``), or the text scorer's artefact folder.
        quantization, precision, dtype, device: how the model is loaded and run.
        calibrate: apply the temperature stored beside ``adapter`` (False: ``--no-calibration``).
        template: the prompt template version (None: the mode's default).
    """

    kind: str = LM_KIND
    model: str = "smollm2-135m"
    adapter: str | None = None
    quantization: str = "none"
    precision: str = "auto"
    dtype: str = "auto"
    device: str = "auto"
    calibrate: bool = True
    template: str | None = None

    def __post_init__(self) -> None:
        check_kind(self.kind)
        self.spec  # noqa: B018  (validates the model's flags: --model, --adapter, --precision...)

    @classmethod
    def for_folder(cls, adapter: str | None, model: str | None = None, *,
                   default_model: str = "smollm2-135m", **fields: Any) -> ScorerId:
        """The scorer an ``--adapter`` folder asks for when no kind is named: a ``bt head train``
        folder is an embeddings head (on ``model``, else the base it names), a ``--method
        seqcls`` adapter a classifier, any other a peft adapter of the model (``model``, else
        ``default_model``)."""
        from llmbt.signals_cache.heads.linear import is_head_folder, read_head
        from llmbt.signals_cache.model.adapters import is_seqcls_adapter

        kind, base = LM_KIND, model or default_model
        if adapter and is_head_folder(adapter):
            kind, base = "embeddings", model or read_head(adapter)[1]["base_model"]
        elif adapter and is_seqcls_adapter(adapter):
            kind = "seqcls"
        return cls(kind=kind, model=base, adapter=adapter, **fields)

    @property
    def is_lm(self) -> bool:
        """Whether the model scores rendered prompts (else a text scorer scores raw texts)."""
        return self.kind == LM_KIND

    @property
    def spec(self) -> ModelSpec:
        """The model's load spec; a text scorer's folder is its own, not the model's adapter."""
        return ModelSpec(base=self.model, adapter=self.adapter if self.is_lm else None,
                         quantization=self.quantization, dtype=self.dtype, device=self.device,
                         precision=self.precision, calibrate=self.calibrate)

    @property
    def folder(self) -> str | None:
        """A text scorer's artefact folder (a head, a classifier adapter); None for the model."""
        return None if self.is_lm else self.adapter

    def with_model(self, model: str, adapter: str | None) -> ScorerId:
        """This scorer with another model and adapter (a model schedule's segment)."""
        return dataclasses.replace(self, model=model, adapter=adapter)

    def text_scorer(self) -> Any:
        """The text scorer of ``kind``, scaled by its folder's stored temperature unless
        ``calibrate`` is off."""
        from llmbt.signals_cache.scoring.temperature import calibrated
        from llmbt.signals_cache.text_scorers.registry import make_scorer

        scorer = make_scorer(self.kind, model=self.model, path=self.folder)
        return calibrated(scorer, self.folder, self.calibrate)

    def fingerprint(self, text_scorer: Any = None) -> str:
        """The signal-cache key of this scorer's scores: the model's content fingerprint
        (:func:`~llmbt.signals_cache.model.loading.model_fingerprint`: weights, adapter,
        quantization, dtype, precision, applied temperature) or ``arm:KIND:...`` of the text
        scorer (``text_scorer``: the one already made, else made here)."""
        if self.is_lm:
            return model_fingerprint(self.spec, "")
        from llmbt.signals_cache.text_scorers.registry import scorer_fingerprint

        return scorer_fingerprint(self.kind, text_scorer or self.text_scorer())

    def to_dict(self) -> dict[str, Any]:
        """Plain fields, for results folders and the trial ledger."""
        return dataclasses.asdict(self)
