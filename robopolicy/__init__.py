"""robopolicy: visuomotor robot policies from demonstrations, in JAX."""

__version__ = "0.1.0"
