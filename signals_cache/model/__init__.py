"""The signal model: loading (aliases, GGUF store, fingerprints), adapters, quantization and
device, file hashing, and the prefix-KV fast attention (:mod:`.kv`).
"""
