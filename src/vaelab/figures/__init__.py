"""Figures, animations and the HTML report.

latent.py       codes, 2-D views (PCA beyond two dimensions), latent grids and walks
images.py       image batches to pixel arrays and mosaics
plots.py        static matplotlib figures (PNG)
gifs.py         Pillow animations: a training callback and latent walks
run_figures.py  every figure kind for a trained run (`vaelab plot RUN KIND`)
report.py       the self-contained HTML report, built from sections
"""
