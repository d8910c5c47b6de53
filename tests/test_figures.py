import os
import re
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from vaelab import latent_usage
from vaelab.cli import main
from vaelab.cli.plot import KINDS as CLI_KINDS
from vaelab.config import ModelConfig, TrainConfig
from vaelab.data import load
from vaelab.diagnostics import UntrainedModelWarning, reconstruction_spread
from vaelab.errors import VaelabError
from vaelab.figures import continual as continual_plots
from vaelab.figures import latent, plots
from vaelab.figures.gifs import ReconstructionFrames, read_frames
from vaelab.figures.report import Figure, Report, Section
from vaelab.models import build
from vaelab.models.losses import gaussian_kl
from vaelab.plotting import KINDS, one_per_class, plot
from vaelab.train import train


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "vae", "vae", epochs=2)


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "ae", "ae")


@pytest.fixture(scope="module")
def test_images():
    return load("mnist-sample", "test")


def test_every_kind_for_a_vae_run_lands_in_its_figures_folder(vae_run):
    sizes = {}
    for kind, figure in KINDS.items():
        path = plot(vae_run, kind)
        assert path == vae_run.figures / figure.file
        with Image.open(path) as image:
            sizes[kind] = image.size
    assert min(sizes["manifold"]) >= 15 * 28  # every cell at least at full resolution
    assert sizes["scatter"][0] > 600 and sizes["loss"][0] > 3 * 300  # three loss panels
    assert sizes["reconstructions"][0] > 10 * 28
    assert len(read_frames(vae_run.figures / "interpolation.gif")) == 8


def test_cli_and_api_offer_the_same_kinds():
    assert set(CLI_KINDS) == set(KINDS)


def test_manifold_is_one_decoder_call_over_the_grid(vae_run):
    model = vae_run.load_model()
    calls = []
    decode = model.decode
    model.decode = lambda z, labels=None: calls.append(len(z)) or decode(z, labels)
    images, values = latent.manifold(model, size=7, limit=2.0)
    assert calls == [49]
    assert images.shape == (49, 1, 28, 28) and values.tolist() == pytest.approx(
        np.linspace(-2, 2, 7).tolist()
    )


def test_the_manifold_depends_on_the_decoder(vae_run):
    model = vae_run.load_model()
    first, _ = latent.manifold(model, size=5)
    again, _ = latent.manifold(model, size=5)
    assert torch.equal(first, again)
    with torch.no_grad():
        model.decoder[-1].bias.add_(1.0)
    changed, _ = latent.manifold(model, size=5)
    assert (changed - first).abs().max() > 0.05


def test_grid_runs_left_to_right_then_top_to_bottom_in_the_chosen_dims():
    z, values = latent.grid(latent_dim=4, size=3, limit=1.0, dims=(1, 3))
    assert z.shape == (9, 4)
    assert z[0].tolist() == [0, -1, 0, 1]  # top left: lowest z[1], highest z[3]
    assert z[2].tolist() == [0, 1, 0, 1]
    assert z[8].tolist() == [0, 1, 0, -1]
    assert z[:, [0, 2]].abs().sum() == 0


def test_latent_spaces_beyond_two_dims_use_pca(test_images):
    model = build(ModelConfig("vae", latent_dim=5)).eval()
    view = latent.plane(latent.codes(model, test_images.float()[:300]))
    assert view.points.shape == (300, 2) and view.axes == ("PC 1", "PC 2")
    assert "PCA of the 5-D code" in view.note
    assert np.allclose(view.points.mean(0), 0, atol=1e-4)
    images, _ = latent.manifold(model, size=3, dims=(2, 4))
    assert images.shape == (9, 1, 28, 28)
    with pytest.raises(VaelabError, match="dimension 5 does not exist"):
        latent.manifold(model, dims=(0, 5))


def test_ae_scatter_is_a_pca_and_its_latent_plane_figures_are_refused(ae_run, tmp_path):
    path = plot(ae_run, "scatter")
    assert path.exists()
    for kind in ("manifold", "samples", "interpolate"):
        with pytest.raises(VaelabError, match="has a 128-D code and none"):
            plot(ae_run, kind, tmp_path / f"{kind}.png")
    walk = plot(ae_run, "interpolate", tmp_path / "walk.gif", images=(0, 1), steps=5)
    assert len(read_frames(walk)) == 5


def test_walk_between_test_images_starts_and_ends_at_their_reconstructions(vae_run, tmp_path):
    path = plot(vae_run, "interpolate", tmp_path / "walk.gif", images=(3, 4), steps=4)
    frames = read_frames(path)
    assert len(frames) == 4 and not np.array_equal(frames[0], frames[-1])


def test_bad_plot_requests_say_what_to_do(vae_run, tmp_path):
    with pytest.raises(VaelabError, match="unknown figure 'heatmap'"):
        plot(vae_run, "heatmap")
    with pytest.raises(VaelabError, match="unknown plot option colour"):
        plot(vae_run, "manifold", colour="red")
    with pytest.raises(VaelabError, match="has 3 numbers; this model's latent space has 2"):
        plot(vae_run, "interpolate", tmp_path / "w.gif", start=[0, 0, 0], end=[1, 1, 1])
    with pytest.raises(VaelabError, match="test image 99999 does not exist"):
        plot(vae_run, "interpolate", tmp_path / "w.gif", images=(0, 99999))
    with pytest.raises(VaelabError, match="two different latent dimensions"):
        plot(vae_run, "manifold", tmp_path / "m.png", dims=(1, 1))


def test_reconstruction_frames_are_one_per_epoch_and_change(test_images, tmp_path):
    images, labels = one_per_class(test_images, 10)
    assert labels.tolist() == list(range(10))
    torch.manual_seed(0)
    model = build(ModelConfig("ae"))
    frames = ReconstructionFrames(images, epochs=3)
    config = TrainConfig(epochs=3, batch_size=64, optimizer="adadelta")
    train(model, load("mnist-sample").first(256), config, callbacks=[frames], progress=False)
    gif = frames.save(tmp_path / "learning.gif")
    pixels = read_frames(gif)
    assert len(pixels) == 3
    assert pixels[0].shape[1] >= 10 * 28 * 3
    assert not np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[1], pixels[2])


def test_anomaly_maps_draw_a_column_per_image(test_images, tmp_path):
    images, _ = one_per_class(test_images, 4)
    errors = torch.rand(4, 28, 28)
    path = plots.anomaly_maps(
        images, images, errors, [1.0, 2.0, 3.0, 4.0], ["0", "1", "2", "3"], tmp_path / "a.png", "t"
    )
    with Image.open(path) as image:
        width, height = image.size
    assert width > height > 3 * 28


def test_report_embeds_every_figure_and_needs_no_network(vae_run, tmp_path):
    for kind in ("manifold", "loss", "interpolate"):
        plot(vae_run, kind, tmp_path / f"{kind}{'.gif' if kind == 'interpolate' else '.png'}")
    report = Report("A <title>", "Intro.\n\nSecond paragraph.", facts={"seed": "0"})
    report.add(Section("One", "Text & more.", [Figure("manifold.png", "The grid.")]))
    report.add(
        Section(
            "Two",
            "",
            [Figure("loss.png", "Losses."), Figure("interpolate.gif", "A walk.")],
            links={"runs/vae": "runs/vae/"},
        )
    )
    page = report.write(tmp_path / "report.html").read_text()
    assert "A &lt;title&gt;" in page and "Text &amp; more." in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for name in ("manifold.png", "loss.png", "interpolate.gif"):
        assert f'href="{name}"' in page
    assert page.count("data:image/png;base64,") == 2 and page.count("data:image/gif;base64,") == 1
    assert page.index("<h2>One</h2>") < page.index("<h2>Two</h2>")
    report.add(Section("Three", "", [Figure("missing.png", "")]))
    with pytest.raises(VaelabError, match="missing.png does not exist"):
        report.write(tmp_path / "report.html")


def test_cli_plot_writes_the_figure_or_explains(vae_run, ae_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["plot", str(vae_run.path), "manifold", "--size", "4", "--range", "2", "--out", str(out)]
    assert main(args) == 0
    assert out.exists() and f"wrote {out}" in capsys.readouterr().out
    assert main(["plot", str(ae_run.path), "samples"]) == 1
    assert "has a 128-D code and none" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nowhere"), "loss"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_anomaly_maps_wrap_onto_rows_of_ten(test_images, tmp_path):
    images, _ = one_per_class(test_images, 20)
    errors = torch.rand(20, 28, 28)
    sizes = []
    for n in (10, 20):
        path = plots.anomaly_maps(
            images[:n], images[:n], errors[:n], [1.0] * n, [str(i) for i in range(n)],
            tmp_path / f"maps{n}.png", "t",
        )  # fmt: skip
        with Image.open(path) as image:
            sizes.append(image.size)
    (width10, height10), (width20, height20) = sizes
    assert width20 == width10 <= 992  # the report's column: shown at full size
    assert height20 > 1.8 * height10 - 60


def test_figures_in_the_report_fit_its_column(vae_run, tmp_path):
    with Image.open(plot(vae_run, "loss", tmp_path / "loss.png")) as image:
        assert image.size[0] <= 992


def test_a_barely_trained_run_warns_in_its_figures(vae_run, tmp_path):
    with pytest.warns(UntrainedModelWarning, match="nearly the same way"):
        plot(vae_run, "reconstructions", tmp_path / "r.png")


def test_reconstruction_spread_is_zero_for_one_picture_and_one_for_copies(test_images):
    images = test_images.float()[:50]
    assert reconstruction_spread(images, images) == pytest.approx(1)
    same = images.mean(0, keepdim=True).expand_as(images)
    assert reconstruction_spread(images, same) == pytest.approx(0, abs=1e-6)


def _heatmap_summary(losses):
    return {"stages": [{"loss": {"7": a, "0": b}} for a, b in losses]}


def test_forgetting_heatmaps_of_all_strategies_share_one_colour_scale(tmp_path):
    order = [7, 0]
    metrics = {
        "protocol": {"order": order},
        "strategies": {
            "naive": _heatmap_summary([(100, 300), (300, 100)]),
            "replay": _heatmap_summary([(200, 200), (200, 200)]),
        },
    }
    scale = continual_plots.loss_range(metrics)
    assert scale == (100, 300)
    path = continual_plots.forgetting_heatmap(
        metrics["strategies"]["replay"], order, tmp_path / "h.png", "replay", scale
    )
    middle = np.array(matplotlib.colormaps["magma_r"](0.5)[:3]) * 255
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(float)
    # every cell is 200, the middle of the shared scale: the cells are its middle colour
    near = np.abs(pixels - middle).max(axis=-1) < 4
    assert near.sum() > 0.2 * near.size


def test_memory_manifold_frames_have_axes(tmp_path):
    torch.manual_seed(0)
    models = [build(ModelConfig("vae")).eval() for _ in range(2)]
    path = continual_plots.memory_manifold(models, [7, 0], tmp_path / "m.gif", "naive")
    frames = read_frames(path)
    assert len(frames) == 2 and frames[0].shape == frames[1].shape
    assert min(frames[0].shape) > 15 * 28 + 60  # the grid plus tick labels and a title


def test_the_interpolation_gif_is_large_enough_to_read(vae_run, tmp_path):
    frames = read_frames(plot(vae_run, "interpolate", tmp_path / "walk.gif", steps=3))
    assert frames[0].shape[1] >= 300


def test_report_text_shows_code_and_escapes_the_rest(tmp_path):
    report = Report("t", "Draw again with `vaelab plot RUN` & <b>more</b>.")
    report.add(Section("S", "Open `a<b>`.", facts={"run": "`vaelab explore x`"}))
    page = report.write(tmp_path / "report.html").read_text()
    assert "<code>vaelab plot RUN</code> &amp; &lt;b&gt;more&lt;/b&gt;." in page
    assert "<code>a&lt;b&gt;</code>" in page and "<code>vaelab explore x</code>" in page
    assert "`" not in page


def test_importing_the_figures_keeps_the_backend_and_no_experiment_module():
    code = (
        "import sys, matplotlib\n"
        "import vaelab.figures.anomaly, vaelab.figures.continual, vaelab.plotting\n"
        "experiments = [m for m in ('vaelab.continual', 'vaelab.anomaly') if m in sys.modules]\n"
        "import vaelab.demo\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "print(experiments)\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def beta_vae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "beta-vae", "beta-vae", epochs=2)


def test_a_traversal_row_varies_its_one_dimension_from_the_base(beta_vae_run):
    model = beta_vae_run.load_model()
    base = torch.linspace(-1, 1, model.latent_dim)
    images, values = latent.traversal(model, base, [7, 2], 5, 2.0)
    assert values.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    z = base.repeat(10, 1)
    z[:5, 7] = z[5:, 2] = torch.tensor(values, dtype=torch.float32)
    assert torch.equal(images, latent.decode(model, z))


def test_usage_is_the_posteriors_kl_by_dimension_and_the_spread_of_its_mean(
    beta_vae_run, test_images
):
    model = beta_vae_run.load_model()
    images = test_images.float()[:300]
    used = latent_usage.usage(model, images)
    with torch.inference_mode():
        mean, log_var = model.posterior(images)
    assert used.kl.sum().item() == pytest.approx(gaussian_kl(mean, log_var).mean().item(), rel=1e-5)
    assert torch.allclose(used.activity, latent.codes(model, images).var(0))
    assert used.images == 300 and used.active.tolist() == (used.activity > 0.01).tolist()


def test_the_kl_by_dimension_adds_up_to_the_losses_kl_exactly():
    """The loss sums the per-dimension terms: training's numbers are unchanged by the split."""
    mean, log_var = torch.randn(64, 10), torch.randn(64, 10)
    expected = -0.5 * torch.sum(1 + log_var - mean.square() - log_var.exp(), dim=1)
    assert torch.equal(gaussian_kl(mean, log_var), expected)


def test_traverse_draws_the_most_used_dimensions_and_refuses_what_it_cannot(
    beta_vae_run, ae_run, tmp_path, capsys
):
    rows = {}
    for count in (3, 10):
        path = plot(beta_vae_run, "traverse", tmp_path / f"rows{count}.png", count=count)
        with Image.open(path) as image:
            rows[count] = image.size[1]
    assert rows[10] > 2 * rows[3]  # a row per dimension
    assert main(["plot", str(beta_vae_run.path), "traverse", "--image", "5", "--size", "7"]) == 0
    assert (beta_vae_run.figures / "traversal.png").exists()
    assert main(["plot", str(beta_vae_run.path), "traverse", "--image", "99999"]) == 1
    assert capsys.readouterr().err.endswith(
        "--image 99999: there is no such test image; choose 0 to 1999\n"
    )
    with pytest.raises(VaelabError, match="a latent traversal needs a generative model"):
        plot(ae_run, "traverse", tmp_path / "ae.png")


@pytest.mark.parametrize(
    ("columns", "ticks"),
    [(15, [0, 7, 14]), (10, [0, 3, 6, 9]), (7, [0, 1, 2, 3, 4, 5, 6]), (2, [0, 1]), (1, [0])],
)
def test_a_traversal_labels_equally_spaced_columns(columns, ticks):
    assert plots.even_ticks(columns).tolist() == ticks
