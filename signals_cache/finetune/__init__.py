"""Fine-tuning: labelled datasets, labelling, encoding, the training loop, the LoRA/QLoRA trainer and
evaluation.
"""
