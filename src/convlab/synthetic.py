"""Build archives in the official CIFAR-10 python format from synthetic, learnable images.

Tests, the demo and benchmarks use them instead of the real data set: same layout, same pickle
protocol and keys, any size. Each class has its own colour and stripe pattern under per-pixel noise, so a
small ConvNet learns it well above chance within an epoch or two.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from convlab.cifar import CLASSES, META, PIXELS, ROOT, TEST_BATCH, TRAIN_BATCHES


def synthetic_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3072) uint8 rows and (count,) labels, balanced over the 10 classes."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.uint8)
    palette = np.random.default_rng(1234).integers(40, 216, size=(len(CLASSES), 3, 1, 1))
    rows = np.arange(32).reshape(1, 32, 1)
    cols = np.arange(32).reshape(1, 1, 32)
    images = np.empty((count, 3, 32, 32), dtype=np.uint8)
    for label in range(len(CLASSES)):
        index = np.flatnonzero(labels == label)
        # Stripes whose direction and period depend on the class, on the class colour.
        period = 2 + label % 5
        stripes = ((rows if label < 5 else cols) // period) % 2 * 50 - 25
        base = palette[label] + stripes
        noise = rng.normal(0, 30, size=(len(index), 3, 32, 32))
        images[index] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return images.reshape(count, PIXELS), labels


class _Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol 2 as Python 2 wrote it: bytes as BINSTRING, which the real archive uses.

    Python 3's own protocol 2 spells bytes as a call to _codecs.encode, a global the real
    archive never holds and our safe unpickler therefore refuses.
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_binstring(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_binstring


def _pickle(obj: object) -> bytes:
    """Pickled as the official archive is: Python 2's protocol 2."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(f"{ROOT}/{name}")
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def batch_bytes(images: np.ndarray, labels: np.ndarray, label: str) -> bytes:
    """A batch pickle as CIFAR-10 has it: bytes keys, uint8 data, list labels, file names."""
    return _pickle(
        {
            b"batch_label": label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": np.ascontiguousarray(images, dtype=np.uint8),
            b"filenames": [f"{i}_{CLASSES[v]}.png".encode() for i, v in enumerate(labels)],
        }
    )


def meta_bytes(per_batch: int) -> bytes:
    return _pickle(
        {
            b"num_cases_per_batch": per_batch,
            b"label_names": [c.encode() for c in CLASSES],
            b"num_vis": PIXELS,
        }
    )


def write_archive(
    path: str | Path,
    per_batch: int = 10000,
    test_size: int | None = None,
    seed: int = 0,
    members: dict[str, bytes] | None = None,
) -> Path:
    """Write a cifar-10-python.tar.gz of 5 x per_batch training and test_size test images.

    `members` replaces or adds raw members (name inside cifar-10-batches-py/ -> bytes), which
    tests use to build broken archives.
    """
    test_size = per_batch if test_size is None else test_size
    x_train, y_train = synthetic_images(5 * per_batch, seed)
    x_test, y_test = synthetic_images(test_size, seed + 1)
    content = {META: meta_bytes(per_batch)}
    for i, name in enumerate(TRAIN_BATCHES):
        part = slice(i * per_batch, (i + 1) * per_batch)
        content[name] = batch_bytes(x_train[part], y_train[part], f"training batch {i + 1} of 5")
    content[TEST_BATCH] = batch_bytes(x_test, y_test, "testing batch 1 of 1")
    content["readme.html"] = (
        b"<meta HTTP-EQUIV='REFRESH' content='0; url=https://www.cs.toronto.edu/~kriz/cifar.html'>"
    )
    content.update(members or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        root = tarfile.TarInfo(ROOT)
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        tar.addfile(root)
        for name, data in content.items():
            _add(tar, name, data)
    return path
