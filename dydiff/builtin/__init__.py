"""Built-in datasets generated on the spot: the maze2d recipe, and locomotion from SAC behaviour policies."""
