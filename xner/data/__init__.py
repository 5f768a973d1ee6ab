"""Datasets: the registry of real data files, encoding for transformers, and the Lightning DataModule."""
