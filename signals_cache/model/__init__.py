"""The signal model: loading (aliases, GGUF store, adapters, quantization, fingerprints) and the
prefix-KV fast attention.
"""
