"""Figures, animations and the HTML report. They take models, records and arrays and never
load run folders: `vaelab.plotting` draws a run's figures from its folder.

latent.py       codes, 2-D views (PCA beyond two dimensions), latent grids and walks
images.py       image batches to pixel arrays and mosaics
plots.py        static matplotlib figures (PNG)
gifs.py         Pillow animations: a training callback and latent walks
report.py       the self-contained HTML report, built from sections
"""
