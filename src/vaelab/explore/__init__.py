"""A live explorer of a run's latent space: a local web page that decodes where you point.

The page draws the codes of test images over the latent plane, decodes the
point under the mouse or finger, sets a VAE's latent dimensions one slider each,
walks between two points or test images, and runs a drawn or dropped picture
through the model. A small server that
holds the model answers it (see `vaelab.explore.server` for its routes):

    explorer = Explorer.from_run("runs/vae")
    make_server(explorer, port=8000).serve_forever()

It is a presentation layer over models, scores, data, runs and figures: it
computes nothing they do not already define.
"""

from vaelab.explore.explorer import DEFAULT_COUNT, Explorer
from vaelab.explore.server import make_server

__all__ = ["DEFAULT_COUNT", "Explorer", "make_server"]
