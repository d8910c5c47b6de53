"""vaelab: learn, see and use autoencoders and variational autoencoders on images.

The public API is imported lazily, so `import vaelab` (and `vaelab --help`)
stays fast until a function that needs torch is used:

    import vaelab
    config = vaelab.RunConfig()
    config.model.name = "vae"
    run = vaelab.fit(config, "runs/vae")
    model = run.load_model()
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "DataConfig": "vaelab.config",
    "ModelConfig": "vaelab.config",
    "NetworkConfig": "vaelab.config",
    "LikelihoodConfig": "vaelab.config",
    "ObjectiveConfig": "vaelab.config",
    "register_model": ("vaelab.models", "register"),
    "register_preset": ("vaelab.presets", "register_preset"),
    "TrainConfig": "vaelab.config",
    "RunConfig": "vaelab.config",
    "VaelabError": "vaelab.errors",
    "DatasetError": "vaelab.errors",
    "Dataset": "vaelab.data",
    "load_dataset": ("vaelab.data", "load"),
    "read_images": "vaelab.data",
    "build_model": ("vaelab.models", "build"),
    "Run": "vaelab.run",
    "fit": "vaelab.train",
    "evaluate": "vaelab.train",
    "estimate_nll": "vaelab.likelihood",
    "importance_nll": "vaelab.likelihood",
    "run_demo": ("vaelab.demo", "demo"),
    "plot": ("vaelab.plotting", "plot"),
    "Explorer": "vaelab.explore",
    "make_explorer_server": ("vaelab.explore", "make_server"),
    "ContinualConfig": "vaelab.continual",
    "run_continual": "vaelab.continual",
    "stage_training_set": "vaelab.continual",
    "AnomalyDetector": "vaelab.anomaly",
    "analyze_run": "vaelab.anomaly",
    "anomaly_metrics": "vaelab.anomaly",
    "score": ("vaelab.scores", "score"),
    "OneClassConfig": "vaelab.bench",
    "run_oneclass": "vaelab.bench",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
    module, attr = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    return getattr(importlib.import_module(module), attr)
