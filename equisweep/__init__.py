"""equisweep: scaling-law studies of equivariant vs non-equivariant networks on Ray."""

__version__ = "0.1.0"
