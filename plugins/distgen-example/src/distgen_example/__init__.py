"""Example distgen plugin: a sliced-Wasserstein distribution encoder."""

__version__ = "0.1.0"
