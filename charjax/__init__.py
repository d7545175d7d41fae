"""charjax: handwritten character recognition (0-9, A-Z, a-z) in JAX/Flax."""

__version__ = "0.1.0"
