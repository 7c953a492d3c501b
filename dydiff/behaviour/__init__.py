"""Online behaviour policies for the built-in locomotion datasets."""
