"""Labels as whole token sequences: which spellings are scored and how P(label) is read off.

A label word is often several tokens (SmolLM2 spells ``Bullish`` as ``B`` + ``ull`` + ``ish``).
P(label) is the probability that the reply *starts with* one of the label's spellings: the sum
over spellings of the product of the conditional probabilities of their tokens. The spellings'
token sequences form a trie; every inner node (a proper prefix of some spelling) is one extra
token appended to the prompt, and a tree attention mask lets each such token see the prompt and
its own ancestors only, so one forward pass yields every conditional probability needed
(:func:`tree_mask`, :func:`tree_positions`, :meth:`LabelTrie.log_probs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmbt.errors import LlmbtError
from llmbt.signals_cache.scoring.labels import LABELS


def check_labels(labels: Sequence[str]) -> None:
    """Refuse empty, blank or repeated label words.

    Raises:
        LlmbtError: naming the labels and what to pass instead.
    """
    if not labels or any(not isinstance(x, str) or not x.strip() for x in labels):
        raise LlmbtError(f"labels {list(labels)!r} must be non-empty words, e.g. {LABELS}.")
    lowered = [x.strip().lower() for x in labels]
    if len(set(lowered)) != len(lowered):
        raise LlmbtError(f"labels {list(labels)!r} repeat a word; give each label once.")


def spellings(label: str) -> list[str]:
    """The spellings scored for ``label``: lower-case and Capitalised, with and without a leading
    space (an UPPER-CASE reply is not counted; its probability shows as missing label mass)."""
    word = label.strip()
    words = dict.fromkeys([word.lower(), word.capitalize()])
    return [*words, *(" " + w for w in words)]


def label_sequences(
    tokenizer: Any, labels: Sequence[str] = LABELS
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Token sequences of each label's spellings, without overlaps.

    A spelling whose tokens extend another spelling of the same label is dropped (its
    probability is already inside the shorter one's), so no path is counted twice.

    Raises:
        LlmbtError: bad labels, or one label's tokens start another label's (their
            probabilities would overlap).
    """
    check_labels(labels)
    result = {}
    for label in labels:
        seqs = {tuple(tokenizer.encode(s, add_special_tokens=False)) for s in spellings(label)}
        seqs.discard(())
        result[label] = tuple(sorted(s for s in seqs if not any(_starts(s, o) for o in seqs)))
    _check_disjoint(result)
    return result


def _starts(seq: tuple[int, ...], other: tuple[int, ...]) -> bool:
    """True when ``other`` is a proper prefix of ``seq``."""
    return len(other) < len(seq) and seq[: len(other)] == other


def _check_disjoint(seqs: dict[str, tuple[tuple[int, ...], ...]]) -> None:
    for a, a_seqs in seqs.items():
        for b, b_seqs in seqs.items():
            if a != b and any(s == o or _starts(o, s) for s in a_seqs for o in b_seqs):
                raise LlmbtError(
                    f"labels {a!r} and {b!r} overlap: a spelling of {a!r} is tokenized as the "
                    f"start of {b!r}, so P({a!r}) would include P({b!r}); rename one of them."
                )


@dataclass(frozen=True)
class LabelTrie:
    """The spellings' token trie and how to read label log-probabilities from its logits.

    Attributes:
        labels: label names, in column order.
        tokens: token of each inner node (a proper, non-empty prefix of some spelling), in the
            order they are appended to the prompt.
        depth: 1-based depth of each inner node (its prefix length).
        ancestors: ``ancestors[k][j]`` is True when inner node j is node k or an ancestor of it.
        steps: ``(logit row, token, spelling)`` per token of every spelling; logit row 0 is the
            prompt's last position, row ``1 + k`` is inner node k.
        spelling_label: label column of each spelling.
    """

    labels: tuple[str, ...]
    tokens: tuple[int, ...]
    depth: tuple[int, ...]
    ancestors: tuple[tuple[bool, ...], ...]
    steps: tuple[tuple[int, int, int], ...]
    spelling_label: tuple[int, ...]

    @classmethod
    def build(cls, seqs: dict[str, tuple[tuple[int, ...], ...]]) -> LabelTrie:
        """The trie of :func:`label_sequences`' output."""
        nodes: dict[tuple[int, ...], int] = {}
        steps, owner = [], []
        for col, label_seqs in enumerate(seqs.values()):
            for seq in label_seqs:
                owner.append(col)
                for i, token in enumerate(seq):
                    if i:
                        nodes.setdefault(seq[:i], len(nodes))
                    steps.append((1 + nodes[seq[:i]] if i else 0, token, len(owner) - 1))
        prefixes = list(nodes)
        ancestors = tuple(tuple(_starts(p, q) or p == q for q in prefixes) for p in prefixes)
        return cls(tuple(seqs), tuple(p[-1] for p in prefixes), tuple(len(p) for p in prefixes),
                   ancestors, tuple(steps), tuple(owner))

    def path(self, k: int) -> list[int]:
        """Tokens of inner node ``k``'s prefix, root first."""
        mine = [j for j, is_ancestor in enumerate(self.ancestors[k]) if is_ancestor]
        return [self.tokens[j] for j in sorted(mine, key=lambda j: self.depth[j])]

    @property
    def size(self) -> int:
        """Inner nodes, i.e. tokens appended to each prompt."""
        return len(self.tokens)

    def log_probs(self, logits: Any) -> Any:
        """``(batch, labels)`` float64 log P(label) from ``(batch, 1 + size, vocab)`` logits."""
        import torch

        rows, toks, spell = (torch.tensor(c, device=logits.device) for c in zip(*self.steps, strict=True))
        lse = torch.logsumexp(logits.float(), dim=-1)
        picked = (logits[:, rows, toks].float() - lse[:, rows]).double()
        per_spelling = picked.new_zeros((logits.shape[0], len(self.spelling_label)))
        per_spelling.index_add_(1, spell, picked)
        owner = torch.tensor(self.spelling_label, device=logits.device)
        return torch.stack([torch.logsumexp(per_spelling[:, owner == col], dim=-1)
                            for col in range(len(self.labels))], dim=-1)


def tree_positions(lengths: Any, width: int, prefix_len: int, trie: LabelTrie) -> Any:
    """Position ids of left-padded prompt suffixes (``lengths`` tokens in ``width`` columns,
    after ``prefix_len`` shared tokens) followed by the trie's inner-node tokens."""
    import torch

    cols = torch.arange(width)
    own = (cols[None, :] - (width - lengths[:, None])).clamp(min=0) + prefix_len
    depth = torch.tensor(trie.depth, dtype=torch.long)
    nodes = prefix_len + lengths[:, None] - 1 + depth[None, :]
    return torch.cat([own, nodes], dim=1)


def tree_mask(lengths: Any, width: int, prefix_len: int, trie: LabelTrie, dtype: Any) -> Any:
    """``(batch, 1, width + size, prefix_len + width + size)`` attention mask: boolean (True =
    attend) when ``dtype`` is ``torch.bool``, else additive in ``dtype``.

    Prompt tokens see the shared prefix and the earlier real tokens of their row; inner-node
    tokens see the prefix, the whole prompt and their own ancestors. Every row sees itself, so
    no row is fully masked (padding rows stay finite).
    """
    import torch

    batch, k = len(lengths), trie.size
    q = width + k
    real = torch.arange(width)[None, :] >= (width - lengths[:, None])
    allowed = torch.zeros((batch, q, prefix_len + q), dtype=torch.bool)
    allowed[:, :, :prefix_len] = True
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed[:, :width, prefix_len : prefix_len + width] = causal[None] & real[:, None, :]
    allowed[:, width:, prefix_len : prefix_len + width] = real[:, None, :]
    if k:
        allowed[:, width:, prefix_len + width :] = torch.tensor(trie.ancestors)
    diag = torch.arange(q)
    allowed[:, diag, prefix_len + diag] = True
    if dtype == torch.bool:
        return allowed[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]
