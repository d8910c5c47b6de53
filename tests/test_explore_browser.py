"""The explorer and the demo's report in a real browser: Debian's Chromium driven by Playwright.

Skipped where Chromium or Playwright is missing, except in CI (CI=true), where a
missing browser is a failure. Screenshots go to $VAELAB_SCREENSHOTS, or a
temporary folder whose path the test prints.
"""

import dataclasses
import io
import json
import os
import re
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaelab.demo import CONTINUAL, Schedule, demo
from vaelab.explore import Explorer, make_server
from vaelab.figures.gifs import read_frames

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHORT_DEMO = Schedule(
    "mnist-sample",
    ae_epochs=1,
    ae_train_size=128,
    vae_epochs=1,
    vae_train_size=256,
    vae7_epochs=1,
    vae7_train_size=128,
    continual=dataclasses.replace(
        CONTINUAL,
        order=[7, 0],
        first_stage_epochs=1,
        train_size=64,
        train=dataclasses.replace(CONTINUAL.train, epochs=1),
    ),
)


def missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[browser]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = missing_browser()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = Path(os.environ.get("VAELAB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


def serving(run, count: int):
    """The address of a server exploring `run` over `count` test images, until the fixture ends."""
    server = make_server(Explorer.from_run(run.path, count=count), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_run):
    yield from serving(tiny_run(tmp_path_factory.mktemp("runs") / "vae", "vae", epochs=2), 500)


@pytest.fixture(scope="module")
def wide_site(tmp_path_factory, tiny_run):
    """A 10-D beta-VAE, trained long enough for its top dimension to change its images."""
    run = tiny_run(tmp_path_factory.mktemp("runs") / "beta-vae", "beta-vae", epochs=3)
    yield from serving(run, 300)


@pytest.fixture(scope="module")
def sevens_site(tmp_path_factory, tiny_run):
    """A VAE trained on sevens alone."""
    yield from serving(tiny_run(tmp_path_factory.mktemp("runs") / "vae7", "vae", classes=[7]), 200)


REFUSED = "Failed to load resource: the server responded with a status of 400"
"""The browser's own log line for a request the server refused, which the page then shows."""


def opened(browser, url: str):
    """The explorer's page at `url`, once it has decoded; any script error fails the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith(REFUSED)
            else None
        ),
    )
    page.goto(url + "/")
    wait_until(page, "() => document.getElementById('decoded').dataset.x !== undefined")
    yield page
    context.close()
    assert problems == []


@pytest.fixture
def page(browser, site):
    yield from opened(browser, site)


@pytest.fixture
def wide_page(browser, wide_site):
    yield from opened(browser, wide_site)


def wait_until(page, script: str, seconds: float = 20) -> None:
    """Poll `script` in the page (its policy forbids the eval behind wait_for_function)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {script}")
        page.wait_for_timeout(50)


def shown_pixels(page, selector: str) -> np.ndarray:
    """The grey pixels of an <img> as the page holds them."""
    values = page.evaluate(
        """selector => {
            const img = document.querySelector(selector), c = document.createElement("canvas");
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext("2d"); g.drawImage(img, 0, 0);
            return Array.from(g.getImageData(0, 0, c.width, c.height).data);
        }""",
        selector,
    )
    side = int(np.sqrt(len(values) // 4))
    return np.array(values, np.uint8).reshape(side, side, 4)[..., 0]


def decoded_at(page) -> tuple[str, str]:
    return page.evaluate(
        "() => [document.getElementById('decoded').dataset.x, "
        "document.getElementById('decoded').dataset.y]"
    )


def server_decode(site: str, x: str, y: str) -> np.ndarray:
    with urllib.request.urlopen(f"{site}/decode?x={float(x):.5f}&y={float(y):.5f}") as answer:
        return np.array(Image.open(io.BytesIO(answer.read())))


def plane_box(page):
    return page.locator("#plane").bounding_box()


def test_moving_over_the_plane_decodes_the_point_under_the_mouse(page, site, screenshots):
    box = plane_box(page)
    images = []
    for fx, fy in ((0.25, 0.3), (0.75, 0.8)):
        before = decoded_at(page)
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        wait_until(page, f"() => document.getElementById('decoded').dataset.x !== '{before[0]}'")
        page.wait_for_timeout(200)  # the move's last decode
        x, y = decoded_at(page)
        wait_until(page, "() => document.getElementById('decoded').complete")
        shown = shown_pixels(page, "#decoded")
        assert np.array_equal(shown, server_decode(site, x, y))
        images.append(shown)
    assert np.abs(images[0].astype(int) - images[1]).max() > 20
    assert page.locator("#where").text_content().startswith("z[0] = ")
    page.screenshot(path=screenshots / "plane.png", full_page=True)


def slider_code(page) -> str:
    """The code the sliders' image was decoded from, once that image has loaded."""
    wait_until(page, "() => document.getElementById('dims-image').dataset.z !== undefined")
    wait_until(page, "() => document.getElementById('dims-image').complete")
    return page.evaluate("() => document.getElementById('dims-image').dataset.z")


def server_code_image(site: str, z: str) -> np.ndarray:
    with urllib.request.urlopen(f"{site}/decode_z.json?z={z}") as answer:
        url = json.load(answer)["image"]
    return np.array(Image.open(urllib.request.urlopen(url)))


def test_moving_a_slider_decodes_the_whole_code_live(wide_page, wide_site, screenshots):
    page = wide_page
    dims = page.evaluate("() => state.plane.dimensions")
    top = dims["order"][0]
    assert page.locator("#dims").is_visible() and page.locator("#dims-sliders input").count() == 10
    first = page.locator("#dims-sliders label").first.text_content()
    assert first.startswith(f"z[{top}] · {dims['kl'][top]:.2f} nats")
    start = slider_code(page)
    assert start == ",".join(["0.0000"] * 10)
    before, point = shown_pixels(page, "#dims-image"), page.evaluate("() => state.codePoint")
    page.locator(f"#dims-sliders input[data-dim='{top}']").fill("3")
    wait_until(page, f"() => document.getElementById('dims-image').dataset.z !== '{start}'")
    page.wait_for_timeout(200)  # the drag's last decode
    z = slider_code(page)
    assert z.split(",")[top] == "3.0000" and z.split(",").count("0.0000") == 9
    after = shown_pixels(page, "#dims-image")
    assert np.array_equal(after, server_code_image(wide_site, z))
    assert np.abs(after.astype(int) - before).max() > 20
    assert page.evaluate("() => state.codePoint") != point
    page.screenshot(path=screenshots / "dimensions.png", full_page=True)


def test_a_clicked_dot_starts_the_sliders_and_back_to_0_resets_them(wide_page, wide_site):
    page = wide_page
    box = plane_box(page)
    image, (px, py) = page.evaluate("() => [state.plane.images[3], state.screen[3]]")
    page.mouse.click(box["x"] + px, box["y"] + py)
    wait_until(page, "() => document.getElementById('dims-start').textContent.includes('test #')")
    with urllib.request.urlopen(f"{wide_site}/code.json?at=test:{image}") as answer:
        code = json.load(answer)["z"]
    assert page.evaluate("() => state.code") == code and any(code)
    page.click("#dims-zero")
    assert page.evaluate("() => state.code") == [0] * 10
    assert page.locator("#dims-start").text_content() == "from 0, the prior's mean"


def test_a_2d_vae_has_no_slider_section(page):
    assert not page.locator("#dims").is_visible()
    assert page.locator("#dims-sliders input").count() == 0


def test_the_card_names_the_model_and_warns_of_few_epochs(page):
    facts = page.locator("#facts").text_content()
    assert "mnist-sample" in facts and "5,285 parameters" in facts and "epochs2" in facts
    assert re.search(r"final losstrain \d+\.\d+, validation \d+\.\d+ \(nats per image\)", facts)
    assert (
        page.locator("#warning").is_visible()
        and "only 2 epochs" in page.locator("#warning").text_content()
    )
    assert re.search(
        r"vaelab train vae --out \S+ --resume --epochs 30\.$",
        page.locator("#warning").text_content(),
    )
    assert page.locator("#legend span").count() == 10


def test_hovering_a_dot_shows_its_test_image(page):
    box = plane_box(page)
    index, (px, py) = page.evaluate("() => [state.plane.images[0], state.screen[0]]")
    page.mouse.move(box["x"] + px, box["y"] + py)
    wait_until(page, "() => !document.getElementById('nearest').hidden")
    wait_until(page, "() => document.getElementById('nearest-image').naturalWidth === 28")
    assert page.locator("#nearest-caption").text_content().startswith("test #")
    assert page.evaluate("() => state.plane.images[state.hovered]") in range(2000)
    assert index >= 0


def test_wheel_zooms_drag_pans_and_a_click_holds(page):
    box = plane_box(page)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    scale = page.evaluate("() => state.view.sx")
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -400)
    wait_until(page, f"() => state.view.sx < {scale} * 0.8")
    centre = page.evaluate("() => state.view.cx")
    page.mouse.down()
    page.mouse.move(cx + 80, cy, steps=5)
    page.mouse.up()
    assert page.evaluate("() => state.view.cx") < centre and not page.evaluate("() => state.held")
    page.mouse.click(cx - 50, cy - 50)
    page.wait_for_timeout(300)
    held = decoded_at(page)
    page.mouse.move(cx + 60, cy + 60, steps=3)
    page.wait_for_timeout(300)
    assert page.evaluate("() => state.held") and decoded_at(page) == held


def test_the_plane_and_the_file_input_work_from_the_keyboard(page):
    page.focus("#plane")
    start = page.evaluate("() => state.cursor")
    page.keyboard.press("ArrowRight")
    first = page.evaluate("() => state.cursor")
    assert first[0] > start[0] and first[1] == pytest.approx(start[1])
    page.keyboard.press("Shift+ArrowUp")
    moved = page.evaluate("() => state.cursor")
    assert moved[0] == pytest.approx(first[0]) and moved[1] > first[1]
    wait_until(page, f"() => Number(document.getElementById('decoded').dataset.y) > {first[1]}")
    scale = page.evaluate("() => state.view.sx")
    page.keyboard.press("+")
    assert page.evaluate("() => state.view.sx") < scale
    page.keyboard.press("Enter")
    assert page.evaluate("() => state.held")
    page.keyboard.press("ArrowLeft")  # moving lets go, as the mouse does
    assert not page.evaluate("() => state.held")
    for _ in range(40):  # Tab reaches the hidden file input behind "open an image…"
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "pad-file":
            break
    assert page.evaluate("() => document.activeElement.id") == "pad-file"


def test_a_resized_window_keeps_the_part_of_the_plane_in_view(page):
    page.click("#zoom-in")
    page.click("#zoom-in")
    before = page.evaluate("() => [state.view.cx, state.view.cy, state.view.sx * inner().w]")
    width = page.evaluate("() => state.size.w")
    page.set_viewport_size({"width": 600, "height": 500})
    wait_until(page, f"() => state.size.w < {width}")
    after = page.evaluate("() => [state.view.cx, state.view.cy, state.view.sx * inner().w]")
    assert after == pytest.approx(before, rel=1e-6)


def test_the_classes_a_run_was_trained_on_stand_out_from_the_others(browser, sevens_site):
    pages = opened(browser, sevens_site)
    page = next(pages)
    assert page.evaluate("() => [...trainedLabels()]") == [7]
    assert page.locator("#legend .trained").text_content() == "7"
    assert page.locator("#legend .untrained").count() == 9
    next(pages, None)  # closes the page, failing on any script error


def test_a_walk_between_two_clicked_points_plays_and_scrubs(page, site, screenshots):
    page.click("#walk-start")  # scrolls the plane back into view
    box = plane_box(page)
    assert box["y"] > -1
    page.mouse.click(box["x"] + 0.2 * box["width"], box["y"] + 0.2 * box["height"])
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + 0.7 * box["height"])
    wait_until(page, "() => !document.getElementById('walk-player').hidden")
    assert page.evaluate("() => state.walk.frames.length") == 8
    status = page.locator("#walk-status").text_content()
    assert re.fullmatch(r"from \(-?[\d.]+, -?[\d.]+\) to \(-?[\d.]+, -?[\d.]+\), 8 steps", status)
    wait_until(page, "() => state.walk.frame > 0")  # it plays
    page.locator("#walk-scrub").fill("3")
    assert page.locator("#walk-step").text_content() == "step 4/8"
    assert page.locator("#walk-play").text_content() == "play"  # scrubbing pauses
    wait_until(page, "() => document.getElementById('walk-frame').complete")
    assert shown_pixels(page, "#walk-frame").shape == (28, 28)
    assert page.locator("#walk-command").text_content().startswith("vaelab plot ")
    page.screenshot(path=screenshots / "walk.png", full_page=True)
    with page.expect_download() as download:
        page.click("#walk-gif")
    gif = Path(download.value.path())
    assert download.value.suggested_filename == "interpolation.gif"
    assert len(read_frames(gif)) == 8


def test_a_drawn_stroke_gets_a_code_a_reconstruction_and_a_score(page, screenshots):
    page.locator("#pad").scroll_into_view_if_needed()
    pad = page.locator("#pad").bounding_box()
    page.mouse.move(pad["x"] + pad["width"] * 0.5, pad["y"] + pad["height"] * 0.15)
    page.mouse.down()
    for t in np.linspace(0, 1, 12):
        x, y = 0.5 - 0.1 * t, 0.15 + 0.7 * t
        page.mouse.move(pad["x"] + pad["width"] * x, pad["y"] + pad["height"] * y)
    page.mouse.up()
    wait_until(page, "() => !document.getElementById('analysis').hidden")
    assert page.locator("#code").text_content().startswith("Its code lands at z[0] = ")
    assert "Anomaly score (recon-mse): " in page.locator("#score").text_content()
    for image in ("#seen", "#reconstruction", "#error"):
        wait_until(page, f"() => document.querySelector('{image}').naturalWidth === 28")
    seen = shown_pixels(page, "#seen")
    assert seen.max() > 200 and seen[0, 0] < 10  # bright ink on black, like MNIST
    assert page.evaluate("() => state.drawn") is not None
    page.locator("#draw").screenshot(path=screenshots / "draw.png")
    # a picture that cannot be read takes the last one's analysis away with it
    not_an_image = {"name": "x.png", "mimeType": "image/png", "buffer": b"no picture"}
    page.locator("#pad-file").set_input_files(not_an_image)
    wait_until(page, "() => document.getElementById('draw-status').textContent.includes('cannot')")
    assert "not an image" in page.locator("#draw-status").text_content()
    assert page.locator("#analysis").is_hidden() and page.evaluate("() => state.drawn") is None


def test_at_700_px_the_decoded_image_stays_beside_the_plane(browser, site, screenshots):
    context = browser.new_context(viewport={"width": 700, "height": 800})
    page = context.new_page()
    page.goto(site + "/")
    wait_until(page, "() => document.getElementById('decoded').dataset.x !== undefined")
    plane, decoded = plane_box(page), page.locator("#decoded").bounding_box()
    assert decoded["x"] >= plane["x"] + plane["width"] and decoded["y"] < 800
    assert decoded["x"] + decoded["width"] <= 700
    page.screenshot(path=screenshots / "width-700.png")
    context.close()


def test_on_a_phone_the_finger_is_followed_and_the_image_is_on_top(browser, site, screenshots):
    context = browser.new_context(
        viewport={"width": 390, "height": 800}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.goto(site + "/")
    wait_until(page, "() => document.getElementById('decoded').dataset.x !== undefined")
    plane, decoded = plane_box(page), page.locator("#decoded").bounding_box()
    assert decoded["y"] + decoded["height"] <= plane["y"] + 1 and decoded["y"] >= 0
    assert plane["width"] <= 390
    before = decoded_at(page)
    page.touchscreen.tap(plane["x"] + 0.3 * plane["width"], plane["y"] + 0.6 * plane["height"])
    wait_until(page, f"() => document.getElementById('decoded').dataset.x !== '{before[0]}'")
    assert not page.evaluate("() => state.held")  # a tap follows, it does not hold
    page.screenshot(path=screenshots / "phone.png", full_page=True)
    context.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the dream classifier goes to a fresh cache
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        return demo(tmp_path_factory.mktemp("demo") / "out", schedule=SHORT_DEMO, progress=False)


def test_the_report_opened_from_disk_offline_shows_every_image(browser, report, screenshots):
    context = browser.new_context(offline=True, viewport={"width": 1000, "height": 900})
    asked = []
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file:")
            else (asked.append(route.request.url), route.abort())
        ),
    )
    page = context.new_page()
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate(
        "() => Array.from(document.images, i => [i.getAttribute('src'), i.complete, "
        "i.naturalWidth])"
    )
    assert len(images) >= 10 and asked == []
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert broken == []
    page.screenshot(path=screenshots / "report.png", full_page=True)
    context.close()
