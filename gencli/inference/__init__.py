"""Using trained models: sampling, grids, translation and evaluation, one module per family."""
