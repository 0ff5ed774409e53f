"""The variants every model test runs over, read from the registry so a new flag or value is covered."""

from bench.config import VariantConfig

LAYER_SCALE_VALUES = (1e-4, 1.0)  # --layer-scale-init takes any positive number: two far from the sizes' 0.1


def variant_names(entry) -> list[str]:
    """"" (the family's default) and one variant per value of every variant flag the entry takes."""
    names = [""]
    for field, values in entry.variants.items():
        for value in values or LAYER_SCALE_VALUES:
            names.append(VariantConfig(**{field: value}).name())
    return names
