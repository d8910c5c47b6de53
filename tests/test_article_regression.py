"""The article's `ae` and `vae` give the numbers they gave before models became parts.

Recorded with vaelab 0.1.0 on the 2-core x86_64 CPU (torch 2.13): the loss at
initialisation on 64 sample test images, and two epochs on the first 512
sample training images (seed 0). The tolerance (1e-4 relative) holds float
rounding on another CPU; any change to the layers, the init, the loss or the
training loop moves these numbers by far more.
"""

import pytest
import torch

import vaelab
from vaelab.config import ModelConfig, RunConfig
from vaelab.data import load
from vaelab.models import build

RTOL = 1e-4
INIT_LOSS = {"ae": {"recon": 0.6946696043014526}, "vae": {"recon": 544.890869140625}}
EPOCHS = {
    "ae": [
        {"train_loss": 0.6830233294749632, "val_loss": 0.6430743289291858},
        {"train_loss": 0.5671533389249817, "val_loss": 0.4989020721912384},
    ],
    "vae": [
        {"train_loss": 539.2803070929949, "train_kl": 0.01773492369102314,
         "val_loss": 529.9452973223329, "val_kl": 0.016730336248874666},
        {"train_loss": 522.0186145579792, "train_kl": 0.023203579185064882,
         "val_loss": 507.50509031599756, "val_kl": 0.04355885237455368},
    ],
}  # fmt: skip
OPTIMIZER = {"ae": "adadelta", "vae": "adam"}


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_loss_at_initialisation_is_unchanged(name):
    torch.manual_seed(0)
    model = build(ModelConfig(name=name, latent_dim=2))
    images = load("mnist-sample", "test").float()[:64]
    torch.manual_seed(1)
    out = model(images)
    for part, value in INIT_LOSS[name].items():
        assert out.losses[part].mean().item() == pytest.approx(value, rel=RTOL)


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_two_epochs_on_the_sample_are_unchanged(name, tmp_path):
    config = RunConfig()
    config.data.dataset, config.data.train_size = "mnist-sample", 512
    config.model.name = name
    config.train.epochs, config.train.optimizer, config.train.seed = 2, OPTIMIZER[name], 0
    rows = vaelab.fit(config, tmp_path / name, progress=False).metrics()
    for row, expected in zip(rows, EPOCHS[name], strict=True):
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=RTOL), key
