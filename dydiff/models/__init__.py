"""Single-step models: the dynamics ensemble (Eq. 5) and the reward model (Eq. 10)."""
