"""How a model's entries live in Ray's object store.

An executor call returns the entries it makes (its clients' new models and states) in few
objects: each entry of PACK_LIMIT bytes or more as an object of its own, all the smaller ones
together as one object, a pack. Ray creates an object in the store at a cost that
does not depend on its size (about 0.7 ms here, with both cores training: the raylet is asked to
create and to seal it), so one object per entry, ten per client for the cnn, was most of what a
call cost beyond its training. Large entries stay objects of their own so that an executor
fetches only the large entries it needs (FedMR's recombined models take each entry from another
client's model). An entry is thus an ObjectRef (the object is the array) or a Part (an index into
a pack); calls get the distinct objects as arguments, and where each entry is among them.

A pack is a few byte buffers (chunks) and where each array lies in them, not a list of arrays:
a recombined model's entries come from many packs, and Ray reads a list of n arrays as n arrays
(a call training 64 of 10,000 recombined models read every pack of the round: 60,000 arrays,
0.2 s), a buffer as one; an entry is then a view into one. A chunk holds at most CHUNK_LIMIT
bytes: Ray copies a larger buffer into the store with 6 threads it starts for the copy
(parallel_memcopy), which on a machine whose cores all train costs more than it saves (a call
returning 3.5 MB, the other core busy: 4-5.5 ms beyond its work as one buffer, 2.5-3.5 ms as
1 MB chunks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import ray

PACK_LIMIT = 1 << 20


@dataclass(frozen=True)
class Part:
    """Entry `index` of a pack."""

    ref: ray.ObjectRef
    index: int


Entry = ray.ObjectRef | Part
Where = tuple[int | tuple[int, int], ...]  # per entry: its object's position, or (position, index)


def locate(entries: Sequence[Entry]) -> tuple[Where, list[ray.ObjectRef]]:
    """Where each entry is among the distinct objects that hold them, and those objects."""
    objects: dict[ray.ObjectRef, int] = {}
    where = []
    for entry in entries:
        if isinstance(entry, Part):
            where.append((objects.setdefault(entry.ref, len(objects)), entry.index))
        else:
            where.append(objects.setdefault(entry, len(objects)))
    return tuple(where), list(objects)


def as_args(entries: Sequence[Entry]) -> list:
    """A call's arguments for these entries: where each is, then the objects (Ray passes each
    object's value)."""
    where, objects = locate(entries)
    return [where, *objects]


def pick(where: Where, objects: Sequence) -> list[np.ndarray]:
    """The entries, from the objects `locate` named (as a call receives them: their values)."""
    return [unpack(objects[w[0]], w[1]) if isinstance(w, tuple) else objects[w] for w in where]


# chunks; per array (its chunk, offset, dtype, shape)
Pack = tuple[tuple[np.ndarray, ...], tuple[tuple[int, int, str, tuple[int, ...]], ...]]
ALIGN = 64
CHUNK_LIMIT = 1 << 20  # Ray's threshold for copying a buffer with threads (kMemcopyDefaultThreshold)


def pack(arrays: Sequence[np.ndarray]) -> Pack:
    """The arrays in chunks of at most CHUNK_LIMIT bytes (an array larger than that in one of its
    own), each array at an ALIGN-byte offset."""
    layout, sizes, offset = [], [], 0
    for array in arrays:
        nbytes = -(-array.nbytes // ALIGN) * ALIGN
        if offset and offset + nbytes > CHUNK_LIMIT:
            sizes.append(offset)
            offset = 0
        layout.append((len(sizes), offset, array.dtype.str, array.shape))
        offset += nbytes
    chunks = [np.empty(size, dtype=np.uint8) for size in [*sizes, offset]]
    for (chunk, start, _, _), array in zip(layout, arrays):
        chunks[chunk][start:start + array.nbytes] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return tuple(chunks), tuple(layout)


def unpack(packed: Pack, index: int) -> np.ndarray:
    """Array `index` of a pack: a view of its chunk."""
    chunks, layout = packed
    chunk, start, dtype, shape = layout[index]
    return np.ndarray(shape, dtype, chunks[chunk], start)  # one call: a combine call reads hundreds


def bundle(arrays: Sequence[np.ndarray], alone: Sequence[bool]) -> tuple:
    """What a call returns for these arrays: those marked alone, one object each, then a pack of
    the others (one object)."""
    pairs = list(zip(arrays, alone, strict=True))
    return (*[a for a, single in pairs if single], pack([a for a, single in pairs if not single]))


def returns(alone: Sequence[bool]) -> int:
    """How many objects `bundle` makes."""
    return sum(alone) + 1


def unbundle(refs: Sequence[ray.ObjectRef], alone: Sequence[bool]) -> list[Entry]:
    """The entries of a `bundle`, from the refs of its objects."""
    singles, packed = iter(refs[:-1]), refs[-1]
    out: list[Entry] = []
    count = 0
    for single in alone:
        if single:
            out.append(next(singles))
        else:
            out.append(Part(packed, count))
            count += 1
    return out


def put(arrays: Sequence[np.ndarray]) -> list[Entry]:
    alone = alone_by_size([a.nbytes for a in arrays])
    return unbundle([ray.put(value) for value in bundle(arrays, alone)], alone)


def fetch(entries: Sequence[Entry]) -> list[np.ndarray]:
    where, objects = locate(entries)
    return pick(where, ray.get(objects))


@dataclass(frozen=True)
class CallLayout:
    """How an executor's train call's flat entries divide: first the call's distinct models, L
    entries each (jobs that train the same model, as every FedAvg client does, send it once), job
    k training `models[k]` of them; then, per job, L entries for each stored state it sends
    (`reads[k]`); then the server state (name, entry count)."""

    entries: int
    models: tuple[int, ...]
    reads: tuple[tuple[str, ...], ...]
    server: tuple[tuple[str, int], ...]
    writes: tuple[str, ...]  # the states each job returns after its model, L entries each

    @staticmethod
    def pack(models: Sequence[Sequence[Entry]]) -> tuple[tuple[int, ...], list[Entry]]:
        """(index of each job's model among the distinct ones, their entries flat)."""
        distinct: dict[tuple, int] = {}
        index = tuple(distinct.setdefault(tuple(model), len(distinct)) for model in models)
        return index, [ref for model in distinct for ref in model]

    def split(self, flat: Sequence) -> tuple[list, list[dict], dict]:
        size, count = self.entries, max(self.models, default=-1) + 1
        distinct = [list(flat[k * size:(k + 1) * size]) for k in range(count)]
        pos, states = count * size, []
        for names in self.reads:
            states.append({})
            for name in names:
                states[-1][name] = list(flat[pos:pos + size])
                pos += size
        server = {}
        for name, entries in self.server:
            server[name] = list(flat[pos:pos + entries])
            pos += entries
        return [distinct[k] for k in self.models], states, server


def alone_by_size(nbytes: Sequence[int]) -> tuple[bool, ...]:
    """Per entry of a model, given each one's bytes: whether it travels alone."""
    return tuple(size >= PACK_LIMIT for size in nbytes)
