"""Benchmarks (``bt bench``): scoring paths, cache lookups and cached backtests; LoRA/QLoRA training
speed and memory.
"""
