"""Importing this module registers every model family."""

from bench.models import amlp, convmixer, ffvit, gmlp, mixer, resmlp, text, transformer, vit  # noqa: F401
