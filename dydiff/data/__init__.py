"""Data formats and views: the validated OfflineDataset, D4RL HDF5 and Minari I/O, windows and normalisers."""
