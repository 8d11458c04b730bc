"""Three tiny local models saved under different cutoffs, and their schedule: the offline example
of a point-in-time model schedule (``bt run --model-schedule``).

The models are random (two GPT-2s without a chat template, scored through the plain completion
template, and one Llama with a chat template): they show the mechanics (one model a segment, its
own cache keys, the hindsight line), not a trading signal. Their tokenizer is the embedded
SmolLM2's, so nothing is downloaded.

Usage: python examples/point_in_time/make_models.py out/pit-models
"""

from __future__ import annotations

import sys
from pathlib import Path

#: (folder, architecture, seed, cutoff): the last day of the data each "was trained on".
MODELS = (("gpt2-2011", "gpt2", 1, "2011-06-30"), ("gpt2-2012", "gpt2", 2, "2011-12-31"),
          ("llama-2012h2", "llama", 3, "2012-06-30"))


def save(folder: Path, arch: str, seed: int, tokenizer) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if arch == "gpt2":
        config = GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=len(tokenizer),
                            n_positions=1024, bos_token_id=tokenizer.eos_token_id,
                            eos_token_id=tokenizer.eos_token_id)
        model, template = GPT2LMHeadModel(config), None  # a base model: no chat template
    else:
        config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2,
                             vocab_size=len(tokenizer), max_position_embeddings=2048,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        model, template = LlamaForCausalLM(config), tokenizer.chat_template
    model.save_pretrained(folder)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    if template is None:
        (folder / "chat_template.jinja").unlink(missing_ok=True)


def main(out: str) -> None:
    from llmbt.signals_cache.model.loading import ModelSpec, load_tokenizer

    root = Path(out)
    rows = ["cutoff,model"]
    for name, arch, seed, cutoff in MODELS:
        tokenizer = load_tokenizer(ModelSpec())  # the embedded SmolLM2's, fresh each time
        save(root / name, arch, seed, tokenizer)
        rows.append(f"{cutoff},{name}")
    (root / "schedule.csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(MODELS)} models and {root / 'schedule.csv'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/pit-models")
