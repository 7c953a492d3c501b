"""dydiff."""
