"""`fedmr-ray partition`'s figure: the label shares of each client beside its size."""

from __future__ import annotations

import numpy as np

from fedmr_ray.data.summary import heatmap_figure


def test_the_heatmap_shows_each_clients_size_on_its_row():
    counts = np.array([[5, 0, 1], [0, 2, 0], [10, 10, 10], [0, 0, 0]])
    figure = heatmap_figure(counts, "t")
    heatmap, bars = figure.axes[:2]
    assert heatmap.get_images()[0].get_array().shape == (4, 3)
    assert [patch.get_width() for patch in bars.patches] == [6, 2, 30, 0]
    assert [patch.get_y() + patch.get_height() / 2 for patch in bars.patches] == [0, 1, 2, 3]  # the heatmap's rows
    assert bars.get_ylim() == heatmap.get_ylim() == (3.5, -0.5)  # client 0 at the top of both
