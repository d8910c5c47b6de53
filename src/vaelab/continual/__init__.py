"""Does the VAE remember? The article's cliffhanger as a sequential-learning experiment.

config = ContinualConfig(dataset="mnist", strategy="generative-replay")
metrics = run_continual(config, "runs/continual")
metrics["strategies"]["generative-replay"]["avg_forgetting"]
"""

from vaelab.continual.loop import ContinualConfig, load_stage_models, run_continual
from vaelab.continual.metrics import average_forgetting, evaluate_stage, forgetting
from vaelab.continual.strategies import (
    DREAM,
    STRATEGIES,
    dreams,
    frozen_copy,
    replay_buffer,
    stage_training_set,
)

__all__ = [
    "DREAM",
    "STRATEGIES",
    "ContinualConfig",
    "average_forgetting",
    "dreams",
    "evaluate_stage",
    "forgetting",
    "frozen_copy",
    "load_stage_models",
    "replay_buffer",
    "run_continual",
    "stage_training_set",
]
