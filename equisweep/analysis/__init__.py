"""Scaling-law analysis: fits, compute-optimal frontiers, family comparison, report.

    from equisweep.analysis import fit, TWO_VAR, analyze_store
    f = fit(TWO_VAR, (N, D), loss)          # Huber/LSE/L-BFGS from the 4,500-start grid
    f.coefs                                 # {"E", "A", "B", "alpha", "beta"}

Submodules: lawfit (forms, objective, grid fit), lbfgs (batched L-BFGS), bootstrap,
frontier (FLOP model, N_opt/S_opt/L*), approaches (envelope, IsoFLOP), analyze (the
`equisweep analyze` pipeline), report (plotly page), data (store/CSV adapters).
Never imports torch. Heavy imports happen on first attribute access, because the CLI
imports this package to build its parser.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "fit": "equisweep.analysis.lawfit",
    "predict": "equisweep.analysis.lawfit",
    "TWO_VAR": "equisweep.analysis.lawfit",
    "ONE_VAR": "equisweep.analysis.lawfit",
    "besiroglu_grid": "equisweep.analysis.lawfit",
    "bootstrap_fit": "equisweep.analysis.bootstrap",
    "allocation": "equisweep.analysis.frontier",
    "fit_flops": "equisweep.analysis.frontier",
    "analyze_store": "equisweep.analysis.analyze",
    "analyze_data": "equisweep.analysis.analyze",
    "load_sweep": "equisweep.analysis.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'equisweep.analysis' has no attribute {name!r}")
