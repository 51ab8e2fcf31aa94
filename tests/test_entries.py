"""How entries are bundled into objects (fedmr_ray/runtime/entries.py), without Ray: strings stand
in for object references, which the functions only hash and compare."""

from __future__ import annotations

import numpy as np

from fedmr_ray.runtime.entries import CHUNK_LIMIT, PACK_LIMIT, Part, alone_by_size, bundle, locate, pack, pick, unbundle, unpack


def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((6, 1, 5, 5)).astype(np.float32), np.array(3, dtype=np.int64),
            np.zeros((0,), dtype=np.float32), rng.standard_normal(PACK_LIMIT // 4).astype(np.float32),
            rng.standard_normal(7), np.arange(5, dtype=np.int32)]


def test_a_pack_gives_back_each_array_bit_for_bit_as_a_view():
    rng = np.random.default_rng(1)
    many = [rng.standard_normal(n).astype(np.float32) for n in (70_000, 90_000, 5, 80_000, 60_000, 1)]
    for items in (arrays(), many, arrays()[:3]):
        packed = pack(items)
        chunks = packed[0]
        # byte buffers (Ray reads each as one), none over CHUNK_LIMIT (Ray copies those with threads)
        assert all(c.dtype == np.uint8 and c.ndim == 1 and c.nbytes <= CHUNK_LIMIT for c in chunks)
        assert len(chunks) <= -(-sum(a.nbytes + 64 for a in items) // CHUNK_LIMIT) + 1
        for i, item in enumerate(items):
            out = unpack(packed, i)
            assert out.dtype == item.dtype and out.shape == item.shape and out.tobytes() == item.tobytes()
            assert out.base is not None  # a view, not a copy
    assert len(pack(many)[0]) == 2  # 1.2 MB: two chunks
    assert pack([])[1] == ()


def test_bundle_then_unbundle_then_pick_is_the_identity():
    """What an executor returns (bundle), the entries the pool makes of the refs (unbundle), and
    what a call receives for them (locate, pick) give the arrays back in order."""
    items = arrays()
    alone = alone_by_size([a.nbytes for a in items])
    assert alone == (False, False, False, True, False, False)  # 1 MB or more travels alone
    returned = bundle(items, alone)
    assert len(returned) == sum(alone) + 1
    refs = [f"object-{k}" for k in range(len(returned))]
    entries = unbundle(refs, alone)
    assert entries[3] == "object-0" and entries[0] == Part("object-1", 0) and entries[5] == Part("object-1", 4)
    values = dict(zip(refs, returned))
    # a call receiving some of them, out of order and twice: each object once
    wanted = [entries[5], entries[3], entries[0], entries[5]]
    where, objects = locate(wanted)
    assert objects == ["object-1", "object-0"]
    for got, expected in zip(pick(where, [values[o] for o in objects]), [items[5], items[3], items[0], items[5]]):
        assert got.tobytes() == expected.tobytes() and got.shape == expected.shape
