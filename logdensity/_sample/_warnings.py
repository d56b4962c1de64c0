"""The warning of the sampling loop, apart so that every part can raise it."""

__all__ = ["SamplingWarning"]


class SamplingWarning(UserWarning):
    """Sampling finished but its diagnostics say the draws may not be trustworthy:
    divergences, R-hat above 1.01, bulk or tail ESS below 100 per chain, or an
    interrupted run; or a chain that `init="map"`/`"pathfinder"` could not move."""
