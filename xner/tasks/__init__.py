"""Task functions behind train.py and evaluate.py (Hydra configs in, metrics out)."""
