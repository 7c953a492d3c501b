"""Diffusion: the EDM math (edm.py), denoiser networks and the trajectory denoiser."""
