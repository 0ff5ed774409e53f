"""Checks the image and text model tests share: the variants they run over, read from the registry
so a new flag or value is covered, and the training-signal check for image classifiers."""

import torch

from bench.core.config import VariantConfig

LAYER_SCALE_VALUES = (1e-4, 1.0)  # --layer-scale-init takes any positive number: two far from the sizes' 0.1


def variant_names(entry) -> list[str]:
    """"" (the family's default) and one variant per value of every variant flag the entry takes."""
    names = [""]
    for field, values in entry.variants.items():
        for value in values or LAYER_SCALE_VALUES:
            names.append(VariantConfig(**{field: value}).name())
    return names


def assert_every_parameter_learns(model, images: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    """Two SGD steps on a batch: finite losses, and every parameter gets a finite, non-zero gradient.
    Classifier heads start at zero (timm), which zeroes every other gradient at step 0, so the
    gradients are checked after one step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    for param_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} {param_name}"
        assert p.grad.abs().sum() > 0, f"{name} {param_name} got no gradient"
