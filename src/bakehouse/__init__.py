"""bakehouse: bake patched, hardened machine images, prove them, publish them, roll onto them."""

__version__ = "0.1.0"
