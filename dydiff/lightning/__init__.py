"""Lightning plumbing shared by the stages: the trainer factory, progress, the evaluation callback, TensorBoard."""
