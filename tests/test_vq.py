"""The VQ-VAE: nearest-vector quantisation, the straight-through gradient, its codebook terms,
training on the sample, the settings it refuses, saved runs, resuming and export."""

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch

import vaelab
from vaelab.anomaly import untrained_warning
from vaelab.cli import main
from vaelab.config import (
    DataConfig,
    LikelihoodConfig,
    ModelConfig,
    NetworkConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
)
from vaelab.errors import SettingError, VaelabError
from vaelab.models import VQVAE, build
from vaelab.models.vq import COMMITMENT, perplexity
from vaelab.run import CHECKPOINT, Run, load_tensors, save_tensors
from vaelab.train import evaluate, evaluate_run, fit, train

needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the onnx extra is not installed (pip install 'vaelab[onnx]')",
)


def fresh(seed: int = 0, **fields) -> VQVAE:
    torch.manual_seed(seed)
    return build(ModelConfig("vq-vae", **fields))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A VQ-VAE trained for four epochs on 2,048 of the sample's images (256 steps, about
    4 s): long enough to reconstruct each digit its own way."""
    config = RunConfig(
        DataConfig("mnist-sample", train_size=2048),
        ModelConfig("vq-vae"),
        TrainConfig(4, batch_size=32, device="cpu", threads=1),
    )
    return fit(config, tmp_path_factory.mktemp("vq") / "run", progress=False)


@pytest.fixture(scope="module")
def sample_images():
    return vaelab.load_dataset("mnist-sample", "test").first(256).float()


def test_the_preset_quantises_the_article_encoders_4x4_grid_of_8_vectors():
    model = fresh()
    assert isinstance(model, VQVAE)
    assert model.code_shape == (8, 4, 4) and model.latent_dim == 128
    assert model.codebook.shape == (512, 8)
    assert not (model.capabilities.posterior or model.capabilities.sampling)


def test_quantise_picks_the_nearest_codebook_vector():
    model = fresh()
    z_e = torch.randn(6, 8, 4, 4) * model.codebook.abs().max()  # among the vectors, not past
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    brute = torch.cdist(flat, model.codebook.detach()).argmin(1)
    assert torch.equal(model.nearest(z_e).flatten(), brute)
    assert len(brute.unique()) > 1
    expected = model.codebook.detach()[brute].view(6, 4, 4, 8).permute(0, 3, 1, 2)
    assert torch.equal(model.quantise(z_e), expected)


def test_quantise_stays_float32_and_exact_under_bf16_autocast():
    model = fresh()
    z_e = torch.randn(6, 8, 4, 4) * model.codebook.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        picked = model.nearest(z_e)
    assert torch.equal(picked, model.nearest(z_e))


def test_codes_are_codebook_vectors_and_decode_to_images():
    model = fresh()
    x = torch.rand(5, 1, 28, 28)
    code = model.encode(x)
    vectors = code.view(5, 8, 16).transpose(1, 2).reshape(-1, 8)
    assert (vectors[:, None] == model.codebook.detach()).all(2).any(1).all()
    assert model.decode(code).shape == (5, 1, 28, 28)


def test_the_straight_through_gradient_reaches_the_encoder_unchanged():
    model = fresh()
    seen = {}
    model.pre_quantise.register_forward_hook(lambda m, i, out: seen.setdefault("z_e", out))
    model.decoder.register_forward_pre_hook(lambda m, args: seen.setdefault("code", args[0]))
    out = model(torch.rand(4, 1, 28, 28))
    seen["z_e"].retain_grad()
    seen["code"].retain_grad()
    out.losses["recon"].mean().backward()
    assert seen["code"].grad.abs().sum() > 0
    assert torch.equal(seen["z_e"].grad, seen["code"].grad)  # the quantiser's gradient is 1
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_only_the_codebook_term_moves_the_codebook_and_only_the_others_the_encoder():
    model = fresh()
    out = model(torch.rand(4, 1, 28, 28))
    encoder = list(model.encoder.parameters())
    for name, term in out.losses.items():
        grads = torch.autograd.grad(
            term.mean(), [model.projection, *encoder], retain_graph=True, allow_unused=True
        )
        moved = [g is not None and bool(g.abs().sum() > 0) for g in grads]
        assert moved[0] == (name == "codebook"), name
        assert all(moved[1:]) == (name != "codebook"), name


def test_decode_draws_the_nearest_code_so_points_between_codes_decode_in_steps():
    model = fresh().eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        a, b = model.encode(x)
        torch.testing.assert_close(model.decode(model.encode(x)), model(x).logits)
        near_a = a + 0.01 * (b - a)  # still nearest a's vectors at every place
        assert torch.equal(model.decode(near_a[None]), model.decode(a[None]))
        steps = torch.stack([a + t * (b - a) for t in torch.linspace(0, 1, 9)])
        drawn = model.decode(steps).flatten(1)
    assert 2 <= len(drawn.unique(dim=0)) <= 9  # a walk changes picture in steps


def test_the_codebook_term_moves_the_vectors_no_code_picked_too():
    """The point of the projected codebook: a free table's unpicked vectors get no gradient
    and stay dead; here one step of the codebook term moves every vector."""
    model = fresh()
    x = torch.rand(4, 1, 28, 28)
    picked = model.nearest(model.code_vectors(x)).unique()
    before = model.codebook.detach().clone()
    optimizer = torch.optim.SGD([model.projection], lr=0.1)
    model(x).losses["codebook"].mean().backward()
    optimizer.step()
    moved = (model.codebook.detach() - before).abs().sum(1) > 0
    unpicked = torch.ones(len(moved), dtype=torch.bool)
    unpicked[picked] = False
    assert unpicked.sum() > 400 and moved[unpicked].all()
    assert torch.equal(model.basis, fresh().basis)  # the basis stays as it was drawn


def test_weights_saved_with_a_free_codebook_table_load_exactly():
    """Runs trained before the codebook was projected saved a `codebook` table."""
    model, table = fresh(), torch.randn(512, 8)
    old = {k: v for k, v in model.state_dict().items() if k not in ("basis", "projection")}
    loaded = fresh(seed=1)
    loaded.load_state_dict(old | {"codebook": table})
    assert torch.equal(loaded.codebook, table)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(
        loaded.encode(x),
        table[loaded.nearest(loaded.code_vectors(x))].permute(0, 3, 1, 2).flatten(1),
    )


def test_resuming_a_checkpoint_saved_with_a_free_codebook_table_is_refused(tmp_path):
    """Resuming needs the optimiser's moments of each parameter, and a free table's (512, 8)
    moments are not the (8, 8) matrix's: refused by name, not a failure at the next step."""
    data = vaelab.load_dataset("mnist-sample", "train").first(64)
    run = Run(tmp_path / "run")
    schedule = TrainConfig(epochs=1, batch_size=32, device="cpu")
    model = fresh()
    train(model, data, schedule, run=run, progress=False)
    tensors, meta = load_tensors(run.path / CHECKPOINT)
    index = [name for name, _ in model.named_parameters()].index("projection")
    tensors["model/codebook"] = tensors.pop("model/basis")
    del tensors["model/projection"]
    for moment in ("exp_avg", "exp_avg_sq"):
        tensors[f"optim/{index}/{moment}"] = torch.zeros(512, 8)
    save_tensors(tensors, run.path / CHECKPOINT, meta)
    again = dataclasses.replace(schedule, epochs=2)
    with pytest.raises(VaelabError, match=f"state optim/{index}/exp_avg has shape \\(512, 8\\)"):
        train(fresh(), data, again, run=run, resume=True, progress=False)


def test_the_codebook_terms_are_the_papers_squared_distances():
    model = fresh()
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    z_e = model.code_vectors(x)
    distance = (z_e - model.quantise(z_e)).square().flatten(1).mean(1)
    torch.testing.assert_close(out.losses["codebook"], distance)
    torch.testing.assert_close(out.losses["commitment"], COMMITMENT * distance)


def test_training_on_the_sample_lowers_the_reconstruction_loss_and_uses_many_vectors(
    trained, sample_images
):
    metrics = trained.metrics()
    untrained = evaluate(fresh(), sample_images)
    assert metrics[-1]["val_recon"] < 0.8 * untrained["recon"]
    assert metrics[-1]["train_recon"] < metrics[0]["train_recon"]
    for key in ("train_codebook", "train_commitment", "val_codebook", "val_commitment"):
        assert key in metrics[-1]
    assert metrics[-1]["val_loss"] == pytest.approx(
        sum(metrics[-1][f"val_{part}"] for part in ("recon", "codebook", "commitment"))
    )
    model = trained.load_model()
    assert untrained_warning(model, sample_images) is None  # not one average picture
    assert 1 < (model.code_counts(sample_images) > 0).sum() <= 512


def test_perplexity_counts_vectors_picked_equally_often():
    assert perplexity(torch.tensor([5, 5, 0, 5, 5])) == pytest.approx(4)
    assert perplexity(torch.tensor([1000, 1, 1])) < 1.1
    assert perplexity(torch.tensor([0, 7])) == pytest.approx(1)


def test_eval_reports_the_codebook_vectors_the_test_codes_use(trained):
    result = evaluate_run(trained)
    assert result["codebook_size"] == 512 and 1 < result["codes_used"] <= 512
    assert 1 < result["code_perplexity"] <= result["codes_used"]
    assert result["loss"] == pytest.approx(
        result["recon"] + result["codebook"] + result["commitment"]
    )


@pytest.mark.parametrize(
    "fields,setting",
    [
        ({"codebook_size": 1}, "codebook_size"),
        ({"conditional": True}, "conditional"),
        ({"objective": ObjectiveConfig("elbo")}, "objective"),
        ({"likelihood": LikelihoodConfig("pixelcnn")}, "likelihood"),
        (
            {"encoder": NetworkConfig("mlp", [64]), "decoder": NetworkConfig("mlp", [64])},
            "encoder",
        ),
    ],
)
def test_settings_a_vq_vae_cannot_follow_are_refused_by_name(fields, setting):
    with pytest.raises(SettingError, match=setting) as caught:
        build(ModelConfig("vq-vae", **fields))
    assert caught.value.settings == (setting,)


def test_a_codebook_size_for_a_model_without_a_codebook_is_refused(tmp_path, capsys):
    with pytest.raises(SettingError, match="codebook_size is read by a VQ-VAE only"):
        build(ModelConfig("vae", codebook_size=64))
    out = tmp_path / "ae"
    assert main(["train", "ae", "--codebook-size", "64", "--out", str(out)]) == 1
    assert "--codebook-size is read by a VQ-VAE only" in capsys.readouterr().err
    assert not out.exists()


def test_scores_and_figures_that_need_a_posterior_or_a_prior_refuse_it(trained, sample_images):
    model = trained.load_model()
    assert vaelab.score(model, sample_images, "recon-mse").shape == (256,)
    for name in ("elbo", "latent", "recon-mse-edge-latent"):
        with pytest.raises(VaelabError, match="posterior q\\(z\\|x\\) .* recon-mse"):
            vaelab.score(model, sample_images, name)
    with pytest.raises(VaelabError, match="prior to sample from"):
        model.sample(4)
    with pytest.raises(VaelabError, match="prior over its latent space"):
        vaelab.plot(trained.path, "samples", size=2)
    assert vaelab.plot(trained.path, "reconstructions", count=4).exists()


def test_a_saved_run_rebuilds_its_config_and_model(trained, sample_images):
    config = trained.config
    assert config.model == ModelConfig("vq-vae").resolved()
    assert config.model.codebook_size == 512 and config.model.kind == "vq"
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    model = trained.load_model()
    with torch.inference_mode():
        again = build(config.model)
        again.load_state_dict(model.state_dict())
        assert torch.equal(again.eval().encode(sample_images), model.encode(sample_images))


def test_settings_without_a_codebook_read_as_before():
    """Results folders record `ModelConfig.to_dict()`; those of models without a codebook
    must match what they recorded before the field existed."""
    assert "codebook_size" not in ModelConfig("vae").resolved().to_dict()
    assert ModelConfig("vq-vae").resolved().to_dict()["codebook_size"] == 512
    old = ModelConfig("ae").resolved().to_dict()
    assert ModelConfig.from_dict(old) == ModelConfig("ae").resolved()


def test_one_epoch_then_resume_one_equals_two_epochs(tmp_path):
    data = vaelab.load_dataset("mnist-sample", "train").first(512)
    schedule = TrainConfig(epochs=2, batch_size=64, seed=3, device="cpu")
    straight = fresh()
    train(straight, data, schedule, run=Run(tmp_path / "a"), progress=False)

    run = Run(tmp_path / "b")
    train(fresh(), data, dataclasses.replace(schedule, epochs=1), run=run, progress=False)
    resumed = fresh(seed=99)  # the checkpoint must restore the codebook with the rest
    train(resumed, data, schedule, run=run, resume=True, progress=False)

    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert Run(tmp_path / "a").metrics()[1]["train_loss"] == run.metrics()[1]["train_loss"]


def test_the_cli_trains_lists_and_evaluates_it_with_another_codebook_size(tmp_path, capsys):
    assert main(["models"]) == 0
    assert "vq-vae" in capsys.readouterr().out
    out = tmp_path / "vq16"
    args = ["train", "vq-vae", "--codebook-size", "16", "--train-size", "256", "--epochs", "1"]
    assert main([*args, "--quiet", "--out", str(out)]) == 0
    assert Run(out).config.model.codebook_size == 16
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codebook_size"] == 16 and 1 <= result["codes_used"] <= 16


@needs_onnx
def assert_the_same_vectors_but_at_ties(model, images, code, expected):
    """The exported encoder picks PyTorch's codebook vectors, bit for bit, except where two
    are as near as rounding can tell (its convolutions round otherwise): at few places."""
    code, expected = torch.from_numpy(code).view(-1, 8, 16), expected.view(-1, 8, 16)
    differ = (code != expected).any(1)
    assert differ.float().mean() < 0.01
    with torch.inference_mode():
        z_e = model.code_vectors(images).view(-1, 8, 16)
    near = (z_e - expected).square().sum(1)[differ]
    other = (z_e - code).square().sum(1)[differ]
    torch.testing.assert_close(other, near, rtol=1e-5, atol=1e-6)


def test_the_exported_graphs_quantise_and_score_as_pytorch_does(trained, sample_images, tmp_path):
    import onnxruntime

    from vaelab.export import export_run

    card = export_run(trained.path, tmp_path, score="recon-mse")
    assert card["latent_dim"] == 128
    graphs = {
        name: onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"))
        for name in ("encoder", "decoder", "score")
    }
    model = trained.load_model()
    for n in (1, 3, 256):  # any batch size
        images = sample_images[:n]
        with torch.inference_mode():
            expected = model.encode(images)
            decoded = model.decode(expected)
        (code,) = graphs["encoder"].run(None, {"images": images.numpy()})
        logits, _ = graphs["decoder"].run(None, {"z": expected.numpy()})
        (score,) = graphs["score"].run(None, {"images": images.numpy()})
        assert_the_same_vectors_but_at_ties(model, images, code, expected)
        assert np.abs(logits - decoded.numpy()).max() < 1e-4
        recon_mse = vaelab.score(model, images, "recon-mse").numpy()
        agree = (torch.from_numpy(code) == expected).all(1).numpy()  # not at a tie
        np.testing.assert_allclose(score[agree], recon_mse[agree], rtol=1e-4)
