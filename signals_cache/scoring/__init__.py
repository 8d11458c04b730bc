"""From prices to scores: bar features, versioned prompts, label words, the label scorer and the
batched, cached scoring pipeline.
"""
