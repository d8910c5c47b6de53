import importlib.util
import json
import re
import sys

import numpy as np
import pytest
import torch

from vaelab.anomaly import AnomalyDetector
from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.data import load
from vaelab.errors import RunError, SettingError, VaelabError
from vaelab.models import build
from vaelab.run import Run
from vaelab.train import fit

needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the onnx extra is not installed (pip install 'vaelab[onnx]')",
)
INSTALL = "pip install 'vaelab[onnx]'"
SAMPLE_AUROC = 1e-5
"""How far the AUROCs may differ on the sample: a pair of scores closer than float32's
rounding may swap, and each of the sample's 200 x 1,800 (normal, anomalous) pairs is
2.8e-6 of AUROC. On full MNIST a pair is 1.1e-7, and the slow test holds the 1e-6 bar."""


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A VAE trained on the sample's sevens for two epochs, exported with recon-mse."""
    from vaelab.export import export_run

    config = RunConfig(
        DataConfig("mnist-sample", classes=[7]), ModelConfig("vae"), TrainConfig(2, batch_size=64)
    )
    run = fit(config, tmp_path_factory.mktemp("vae") / "run", progress=False)
    return run, export_run(run.path, score="recon-mse")


@pytest.fixture(scope="module")
def saved_detector(tmp_path_factory):
    """An AE detector fitted on the sample's sevens for one epoch, saved and exported."""
    from vaelab.export import export_run

    sevens = load("mnist-sample", "train").with_classes([7]).images.numpy()
    detector = AnomalyDetector("ae", TrainConfig(epochs=1, device="cpu"), "recon-bce")
    path = detector.fit(sevens).save(tmp_path_factory.mktemp("detector") / "detector")
    return path, detector, export_run(path)


def sessions(folder):
    import onnxruntime

    return {
        name: onnxruntime.InferenceSession(str(folder / f"{name}.onnx"))
        for name in ("encoder", "decoder", "score")
        if (folder / f"{name}.onnx").exists()
    }


@needs_onnx
def test_onnx_graphs_compute_what_pytorch_does_on_real_images(vae_run):
    run, _ = vae_run
    model = run.load_model()
    graphs = sessions(run.path / "onnx")
    images = load("mnist-sample", "test").float()[:500]
    z_mean, z_log_var = graphs["encoder"].run(None, {"images": images.numpy()})
    logits, pixels = graphs["decoder"].run(None, {"z": z_mean})
    (score,) = graphs["score"].run(None, {"images": images.numpy()})
    with torch.inference_mode():
        mean, log_var = model.posterior(images)
        decoded = model.decode(torch.from_numpy(z_mean))
        expected = vaelab_score(model, images)
    assert np.abs(z_mean - mean.numpy()).max() < 1e-5
    assert np.abs(z_log_var - log_var.numpy()).max() < 1e-5
    assert np.abs(logits - decoded.numpy()).max() < 1e-5
    assert np.abs(pixels - torch.sigmoid(decoded).numpy()).max() < 1e-5
    np.testing.assert_allclose(score, expected.numpy(), rtol=1e-5)


def vaelab_score(model, images):
    from vaelab.scores import score

    return score(model, images, "recon-mse")


@needs_onnx
def test_every_graph_takes_any_batch_size(vae_run):
    run, _ = vae_run
    graphs = sessions(run.path / "onnx")
    for n in (1, 3):
        images = np.full((n, 1, 28, 28), 0.25, np.float32)
        (z_mean, _) = graphs["encoder"].run(None, {"images": images})
        (logits, _) = graphs["decoder"].run(None, {"z": z_mean})
        assert z_mean.shape == (n, 2) and logits.shape == (n, 1, 28, 28)
        assert graphs["score"].run(None, {"images": images})[0].shape == (n,)


@needs_onnx
def test_check_measures_the_largest_differences_and_the_auroc(vae_run):
    from vaelab.export import check_export, read_card

    run, _ = vae_run
    check = check_export(run.path)
    assert check.images == 2000 and check.dataset == "mnist-sample"
    assert check.max_abs_diff["encoder"] < 1e-5 and check.max_abs_diff["decoder"] < 1e-5
    assert check.max_abs_diff["score"] < 1e-3  # sums of 784 squared errors, in float32
    assert check.normal == [7]
    assert check.auroc[0] == pytest.approx(check.auroc[1], abs=SAMPLE_AUROC)
    assert check.decisions_differ is None  # a run has no threshold
    recorded = read_card(run.path / "onnx")["check"]
    assert recorded["max_abs_diff"] == check.max_abs_diff


@needs_onnx
def test_the_edge_and_latent_score_exports_and_gives_the_same_auroc(vae_run, tmp_path):
    from vaelab.export import check_export, export_run

    run, _ = vae_run
    out = tmp_path / "onnx"
    export_run(run.path, out, score="recon-mse-edge-latent")
    check = check_export(run.path, out)
    assert check.max_abs_diff["score"] < 1e-3
    assert check.auroc[0] == pytest.approx(check.auroc[1], abs=SAMPLE_AUROC)


@needs_onnx
def test_the_card_round_trips_and_says_what_each_graph_takes(vae_run):
    import onnx

    from vaelab.export import OPSET, read_card

    run, card = vae_run
    folder = run.path / "onnx"
    on_disk = read_card(folder)
    on_disk.pop("check", None)
    assert on_disk == json.loads(json.dumps(card))
    assert card["opset"] == OPSET
    assert card["latent_dim"] == 2
    assert card["images"] == {
        "shape": ["batch", 1, 28, 28], "dtype": "float32", "range": [0.0, 1.0],
        "trained_on": "mnist-sample",
    }  # fmt: skip
    assert card["score"]["name"] == "recon-mse" and card["score"]["threshold"] is None
    encoder = card["graphs"]["encoder"]
    assert encoder["input"]["shape"] == ["batch", 1, 28, 28]
    assert [o["name"] for o in encoder["outputs"]] == ["z_mean", "z_log_var"]
    assert card["graphs"]["decoder"]["input"] == {
        "name": "z", "shape": ["batch", 2], "dtype": "float32",
        "meaning": card["graphs"]["decoder"]["input"]["meaning"],
    }  # fmt: skip
    assert card["graphs"]["score"]["outputs"][0]["shape"] == ["batch"]
    for entry in card["graphs"].values():
        proto = onnx.load(str(folder / entry["file"]))
        assert [i.name for i in proto.graph.input] == [entry["input"]["name"]]
        assert [o.name for o in proto.graph.output] == [o["name"] for o in entry["outputs"]]
        assert entry["opset"] == OPSET
        assert all(o["meaning"] for o in entry["outputs"])


@needs_onnx
def test_a_detector_exports_its_score_and_threshold(saved_detector):
    from vaelab.export import check_export, read_card, test_set

    path, detector, card = saved_detector
    assert card["score"]["name"] == "recon-bce"
    assert card["score"]["threshold"] == detector.threshold_
    assert card["score"]["threshold_fpr"] == detector.held_out_flagged_
    assert 0.05 <= detector.held_out_flagged_ < 0.1
    assert card["images"]["trained_on"] is None
    assert [o["name"] for o in card["graphs"]["encoder"]["outputs"]] == ["code"]
    assert card["latent_dim"] == 128
    check = check_export(path, test=test_set(path, "mnist-sample"), normal=[7])
    assert max(check.max_abs_diff[name] for name in ("encoder", "decoder")) < 1e-5
    assert check.auroc[0] == pytest.approx(check.auroc[1], abs=SAMPLE_AUROC)
    assert check.decisions_differ == 0
    scores = sessions(path / "onnx")["score"].run(None, {"images": load_sevens()})[0]
    np.testing.assert_allclose(scores, detector.score_samples(load_sevens()), rtol=1e-5)
    assert read_card(path / "onnx")["check"]["decisions_differ"] == 0


def load_sevens():
    return load("mnist-sample", "test").with_classes([7]).float().numpy()


@needs_onnx
def test_a_detector_keeps_its_own_score_and_needs_test_images_named(saved_detector):
    from vaelab.export import export_run, test_set

    path, _, _ = saved_detector
    with pytest.raises(SettingError, match="recon-bce, and its threshold holds for that score"):
        export_run(path, score="recon-mse")
    with pytest.raises(SettingError, match="fitted on arrays") as error:
        test_set(path)
    assert "--dataset" in error.value.as_flags()


@needs_onnx
@pytest.mark.parametrize("score", ["elbo", "iwae"])
def test_a_sampled_score_is_refused_naming_the_exportable_ones(vae_run, tmp_path, score):
    from vaelab.export import export_run

    run, _ = vae_run
    with pytest.raises(VaelabError) as error:
        export_run(run.path, tmp_path / "out", score=score)
    message = str(error.value)
    assert f"score {score!r} draws posterior samples" in message
    exportable = "recon-bce, recon-mse, recon-mse-edge, recon-mse-edge-latent, latent"
    assert message.endswith(f"the exportable scores are {exportable}")
    assert not (tmp_path / "out").exists()


def untrained_run(path, name):
    torch.manual_seed(0)
    config = RunConfig()
    config.model = ModelConfig(name).resolved()
    run = Run.create(path, config)
    run.save_weights(build(config.model), 0)
    return run


@needs_onnx
def test_scores_and_models_that_cannot_be_exported_are_refused(tmp_path):
    from vaelab.export import export_run

    ae = untrained_run(tmp_path / "ae", "ae")
    with pytest.raises(VaelabError, match="'latent' needs a model with a posterior"):
        export_run(ae.path, score="latent")
    with pytest.raises(VaelabError, match="unknown score 'nope'; the exportable scores are"):
        export_run(ae.path, score="nope")
    cvae = untrained_run(tmp_path / "cvae", "cvae")
    with pytest.raises(VaelabError, match="cvae is conditional .* takes unconditional models"):
        export_run(cvae.path)


@needs_onnx
@pytest.mark.parametrize("name", ["mlp-vae", "resnet-vae"])
def test_the_other_network_families_export_too(tmp_path, name):
    from vaelab.export import check_export, export_run

    run = untrained_run(tmp_path / name, name)
    card = export_run(run.path)
    assert card["latent_dim"] == {"mlp-vae": 2, "resnet-vae": 32}[name]
    check = check_export(run.path, test=load("mnist-sample", "test").first(200))
    assert check.max_abs_diff["encoder"] < 1e-5 and check.max_abs_diff["decoder"] < 1e-5


@needs_onnx
def test_a_missing_run_folder_is_a_clear_error(tmp_path):
    from vaelab.export import check_export, export_run

    with pytest.raises(RunError, match=re.escape(f"run folder {tmp_path / 'nope'} does not exist")):
        export_run(tmp_path / "nope")
    run = untrained_run(tmp_path / "run", "vae")
    with pytest.raises(VaelabError, match=r"card.json not found: export the run first"):
        check_export(run.path)


def test_a_dataset_without_a_test_split_names_the_inputs_export_can_check_on(tmp_path):
    """Training may hold out a fraction of such a folder; a check of the export cannot."""
    from PIL import Image

    from vaelab.export import test_set

    (tmp_path / "photos" / "good").mkdir(parents=True)
    Image.new("L", (28, 28)).save(tmp_path / "photos" / "good" / "0.png")
    run = untrained_run(tmp_path / "run", "vae")
    with pytest.raises(SettingError) as refused:
        test_set(run.path, dataset=str(tmp_path / "photos"))
    assert refused.value.as_flags() == (
        f"{tmp_path / 'photos'} has no test split to check the export on: give a dataset with "
        "one with --dataset, or unlabelled image files and folders with --images"
    )


@needs_onnx
def test_exporting_without_a_score_removes_an_earlier_score_graph(tmp_path):
    from vaelab.export import export_run

    run = untrained_run(tmp_path / "run", "vae")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "score.onnx").write_bytes(b"from an earlier export")
    card = export_run(run.path, tmp_path / "out")
    assert card["score"] is None and sorted(card["graphs"]) == ["decoder", "encoder"]
    assert not (tmp_path / "out" / "score.onnx").exists()


@needs_onnx
def test_cli_writes_the_graphs_and_prints_the_largest_differences(vae_run, tmp_path, capsys):
    run, _ = vae_run
    out = tmp_path / "onnx"
    assert main(["export", str(run.path), "--out", str(out), "--score", "recon-bce"]) == 0
    printed = capsys.readouterr().out
    wrote = f"wrote encoder.onnx, decoder.onnx, score.onnx and card.json (opset 18) to {out}"
    assert wrote in printed
    assert "on the 2000 test images of mnist-sample, largest absolute difference" in printed
    differences = dict(re.findall(r"^  (\w+) +([0-9.e+-]+)  \(", printed, re.M))
    assert sorted(differences) == ["decoder", "encoder", "score"]
    assert float(differences["encoder"]) < 1e-5 and float(differences["decoder"]) < 1e-5
    auroc = re.search(r"recon-bce AUROC, normal classes \[7\]: .* \(difference (.*)\)", printed)
    assert float(auroc.group(1)) < SAMPLE_AUROC
    assert json.loads((out / "card.json").read_text())["score"]["name"] == "recon-bce"


@needs_onnx
def test_cli_errors_are_one_line(vae_run, saved_detector, tmp_path, capsys):
    run, _ = vae_run
    assert main(["export", str(run.path), "--score", "elbo", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("vaelab: error: score 'elbo' draws") and error.count("\n") == 1
    detector, _, _ = saved_detector
    assert main(["export", str(detector), "--out", str(tmp_path / "d")]) == 1
    assert "give one with --dataset (e.g. mnist" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before writing anything
    classes = list(range(10))
    for extra, message in [
        (["--score", "recon-mse", "--normal", "11"],
         f"--normal class [11] is not in the test set of mnist-sample; it has {classes}"),
        (["--score", "recon-mse", "--normal", "0-9"],
         f"--normal {classes} is every class of the test set of mnist-sample; leave at least one"),
        (["--normal", "3"], "--normal names the classes of the score's AUROC check, but the "
         "export has no score graph: add --score NAME or leave --normal out"),
    ]:  # fmt: skip
        assert main(["export", str(run.path), "--out", str(tmp_path / "d"), *extra]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_without_the_onnx_extra_export_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from vaelab.export import export_run

    run = untrained_run(tmp_path / "run", "vae")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    hint = f"ONNX export needs the package onnxruntime, which is not installed: {INSTALL}"
    with pytest.raises(VaelabError, match=re.escape(hint)):
        export_run(run.path)
    assert main(["export", str(run.path)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and INSTALL in error


@pytest.mark.slow
@needs_onnx
def test_full_mnist_export_matches_pytorch_on_the_10000_test_images(mnist_dir, tmp_path):
    """The bar: encoder and decoder within 1e-5 of PyTorch on all of MNIST's test images,
    and the detector's score the same AUROC."""
    from vaelab.export import check_export, export_run, test_set

    sevens = load("mnist", "train", mnist_dir).with_classes([7]).images.numpy()
    detector = AnomalyDetector("vae", TrainConfig(epochs=1, device="cpu"), "recon-mse")
    path = detector.fit(sevens).save(tmp_path / "detector")
    export_run(path)
    check = check_export(path, test=test_set(path, "mnist", str(mnist_dir)), normal=[7])
    print(check)
    assert check.images == 10_000
    assert check.max_abs_diff["encoder"] < 1e-5 and check.max_abs_diff["decoder"] < 1e-5
    assert abs(check.auroc[0] - check.auroc[1]) < 1e-6
    assert check.decisions_differ == 0
