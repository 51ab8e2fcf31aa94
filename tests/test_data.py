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
