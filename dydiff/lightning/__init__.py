"""Lightning wrappers: thin modules around the models, plus trainer and checkpoint plumbing."""
