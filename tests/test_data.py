import numpy as np

from fedmr_ray.data import make_synthetic


def test_synthetic_is_deterministic_and_a_client_does_not_depend_on_the_number_of_clients():
    small, large = make_synthetic(10, seed=3), make_synthetic(25, seed=3)
    for client in range(10):
        xs, ys = small.client_samples(client)
        xl, yl = large.client_samples(client)
        assert np.array_equal(xs, xl) and np.array_equal(ys, yl)
    other = make_synthetic(10, seed=4)
    assert not np.array_equal(small.x_train[:10], other.x_train[:10])


def test_synthetic_shapes_sizes_and_labels():
    data = make_synthetic(50, seed=0)
    assert data.input_shape == (60,) and data.num_classes == 10 and data.num_clients == 50
    sizes = data.client_sizes()
    assert sizes.sum() == len(data.y_train) == len(data.x_train)
    assert sizes.min() >= 45  # 90% of at least 50 samples
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert set(np.unique(data.y_test)) <= set(range(10)) and len(data.y_test) > 0
    # non-IID: clients' label distributions differ
    first, second = (np.bincount(data.client_samples(c)[1], minlength=10) for c in (0, 1))
    assert not np.array_equal(first, second)


def _linear_fit(data, w, b) -> float:
    """The share of the training and test samples that argmax(x W + b) labels right."""
    x, y = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    return float(np.mean(np.argmax(x.astype(np.float64) @ w + b, axis=1) == y))


def test_shared_labels_are_one_model_for_every_client_with_the_same_clients_and_inputs():
    from fedmr_ray.data.synthetic import SHARED_MODEL, generated_synthetic
    from fedmr_ray.rng import Stream, generator

    own, shared = make_synthetic(40, seed=6, shared=False), make_synthetic(40, seed=6)
    assert np.array_equal(own.client_offsets, shared.client_offsets)
    assert np.array_equal(own.x_train, shared.x_train) and np.array_equal(own.x_test, shared.x_test)
    common = generator(6, Stream.DATA, SHARED_MODEL)
    w, b = common.normal(0, 1, (60, 10)), common.normal(0, 1, 10)
    assert _linear_fit(shared, w, b) == 1.0  # one model labels every client's samples
    assert _linear_fit(own, w, b) < 0.5  # under LEAF's labels it does not
    # still non-IID: the clients' label mixes differ, and the whole test set is not one class
    mixes = np.stack([np.bincount(shared.client_samples(c)[1], minlength=10) for c in range(40)])
    assert len({tuple(m) for m in mixes}) == 40 and np.bincount(shared.y_test).max() < 0.5 * len(shared.y_test)
    # the clients made when they train are the same as the stored ones
    lazy = generated_synthetic(40, seed=6)
    for client in (0, 17, 39):
        assert all(np.array_equal(p, q) for p, q in zip(lazy.client_samples(client), shared.client_samples(client)))


def test_client_sizes_drawn_in_processes_are_those_drawn_one_by_one(monkeypatch):
    from fedmr_ray.data import synthetic

    alone = synthetic.client_sizes(3000, seed=4)
    assert alone.tolist() == [synthetic._client_size(synthetic.generator(4, synthetic.Stream.DATA, c))
                              for c in range(3000)]
    monkeypatch.setattr(synthetic, "PARALLEL_SIZES", 100)
    monkeypatch.setattr(synthetic.os, "cpu_count", lambda: 2)  # in processes even on one CPU
    assert synthetic.client_sizes(3000, seed=4).tolist() == alone.tolist()
