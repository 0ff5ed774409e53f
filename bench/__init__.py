"""mlpbench: train, measure and compare MLP-style architectures against a Transformer baseline."""

from bench.core import process

process.configure()  # before PyTorch loads OpenMP: see bench/core/process.py
