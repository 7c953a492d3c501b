"""Data: dataset sources, the validated OfflineDataset, windows and normalisers."""
