"""Atoll: self-hosted platform for the whole ML development cycle."""

__version__ = "0.1.0"
