"""Repurposing the signal model: its hidden states (a chosen layer, mean- or last-token-pooled)
feeding a small classifier head. :mod:`.embed` extracts the features (torch), :mod:`.linear` is
the head as plain numpy arrays (saved as safetensors + JSON, never pickled), :mod:`.scorer` loads a
head folder into a text scorer, :mod:`.train` fits one (scikit-learn, the ``heads`` extra).
"""
