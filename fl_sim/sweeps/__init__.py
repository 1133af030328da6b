"""Sweeps: scenarios times a grid of overrides, each cell an ``fl-sim run``, gathered into tables and heatmaps.

One YAML file names scenarios and a grid of overrides, expanded into cells that each run as an
``fl-sim run``, then gathered into one CSV table, a Markdown summary and heatmaps.

The modules here are pure (no Ray, no subprocess): ``spec`` (the sweep file), ``grid`` (cells),
``table`` (results -> rows -> CSV), ``summary`` (mean and std over seeds, Markdown), ``heatmap``.
"""
