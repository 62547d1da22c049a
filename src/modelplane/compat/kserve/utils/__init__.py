"""Compatibility: `kserve.utils`."""
