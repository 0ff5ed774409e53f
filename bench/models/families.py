"""Importing this module registers every model family."""

from bench.models import gmlp, mixer, resmlp, vit  # noqa: F401
