"""dydiff: offline RL with Dynamics Diffusion (DyDiff)."""

__version__ = "0.1.0"
