"""Image data sets and a fast, deterministic mini-batch loader.

* Fashion-MNIST (and MNIST) from the four original IDX files, gzipped or not.  Debian's
  ``dataset-fashion-mnist`` package installs them in ``/usr/share/datasets/fashion-mnist/``.
* CIFAR-10 from its standard ``cifar-10-batches-py`` directory (pickled batches, read with an
  unpickler that only accepts NumPy arrays).
* :class:`BatchLoader`: shuffling, random-crop-with-padding and horizontal flips, then
  normalisation through a 256-entry lookup table, into reused buffers.  Every random choice
  of batch ``b`` of epoch ``e`` is a pure function of ``(seed, e, b)``, so a run resumed at
  any batch sees exactly the batches an uninterrupted run would.

Images stay ``uint8`` (N, C, H, W) until a batch is assembled; a batch is float32 NCHW.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DatasetError", "Dataset", "DATASETS", "DEFAULT_FASHION_MNIST_DIR", "load_dataset",
    "load_idx", "load_mnist_like", "load_cifar10", "BatchLoader",
]

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"


class DatasetError(RuntimeError):
    """A data set is missing or malformed; the message is one line saying how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """A labelled image classification data set held in memory as ``uint8``.

    Attributes:
        name: data set name (a key of :data:`DATASETS`).
        train_images, test_images: ``uint8`` arrays of shape (N, C, H, W).
        train_labels, test_labels: ``int64`` arrays of shape (N,), values in [0, num_classes).
        mean, std: per-channel normalisation constants on the [0, 1] pixel scale.
        flip: whether horizontal flips preserve the label (off for digits).
        pad: padding of the random crop, in pixels.
        num_classes: number of classes.
    """

    name: str
    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.int64]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    pad: int
    num_classes: int = 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """A content fingerprint: the split sizes and image shape, then 16 hex digits of a SHA-256
        over the labels and up to 256 evenly spaced images of each split.

        It depends on the data only (not on where the files are), so a run can resume on another
        machine holding the same files, and it costs milliseconds even for the full data set.
        """
        h = hashlib.sha256()
        for images, labels in ((self.train_images, self.train_labels), (self.test_images, self.test_labels)):
            h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
            sample = np.unique(np.linspace(0, len(images) - 1, num=min(len(images), 256)).astype(np.int64))
            h.update(np.ascontiguousarray(images[sample]).tobytes())
        c, height, width = self.image_shape
        return f"{len(self.train_labels)}+{len(self.test_labels)}x{c}x{height}x{width}:{h.hexdigest()[:16]}"

    def limit(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test images (None keeps all).

        Args:
            train: the number of training images to keep (None: all).
            test: the number of test images to keep (None: all).
        """
        for arg, value in (("train", train), ("test", test)):
            if value is not None and value < 1:
                raise ValueError(f"{arg} limit must be a positive number of images, got {value}")
        return Dataset(self.name, self.train_images[:train], self.train_labels[:train],
                       self.test_images[:test], self.test_labels[:test], self.mean, self.std,
                       self.flip, self.pad, self.num_classes)


# ----------------------------------------------------------------------------------- IDX files

_IDX_DTYPES = {0x08: np.uint8}  # the only element type the MNIST family uses


def load_idx(path: str | os.PathLike) -> npt.NDArray[np.uint8]:
    """Read one IDX file (``.gz`` or raw), validating its header against its size.

    The header is two zero bytes, a type code (``0x08`` = unsigned byte), the number of
    dimensions, then one big-endian uint32 per dimension; the data follows in C order.

    Args:
        path: the file (gzip-compressed or raw).

    Raises:
        DatasetError: the file is missing, truncated, too long or has a bad header.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DatasetError(f"{path} not found") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path} is not a readable (gzipped) IDX file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DatasetError(f"{path} has no valid IDX header (magic {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated inside its IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape)  # Python ints: a crafted header cannot overflow
    if len(raw) != expected:
        raise DatasetError(f"{path} holds {len(raw)} bytes but its IDX header {shape} needs {expected}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def _find_idx(root: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(root, name)):
            return os.path.join(root, name)
    return os.path.join(root, stem + ".gz")  # load_idx reports it missing


def load_mnist_like(root: str | os.PathLike, name: str = "fashion-mnist") -> Dataset:
    """Load Fashion-MNIST or MNIST from the four IDX files in ``root``.

    Args:
        root: the directory holding the four IDX files (``.gz`` or raw).
        name: ``"fashion-mnist"`` or ``"mnist"`` (the data set's statistics and hint).

    Raises:
        DatasetError: a file is missing or corrupt, or images and labels disagree.
    """
    root = os.fspath(root)
    hint = ("install it with `apt-get install dataset-fashion-mnist` or pass --data DIR holding "
            if name == "fashion-mnist" else "pass --data DIR holding ") + ", ".join(f + ".gz" for f in IDX_FILES)
    arrays = []
    for stem in IDX_FILES:
        try:
            arrays.append(load_idx(_find_idx(root, stem)))
        except DatasetError as exc:
            raise DatasetError(f"{name}: {exc}; {hint}") from None
    splits = []
    for images, labels, stem in ((arrays[0], arrays[1], IDX_FILES[0]), (arrays[2], arrays[3], IDX_FILES[2])):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(f"{name}: {stem} has shape {images.shape} but its labels {labels.shape}; "
                               f"the files in {root} do not belong together")
        if labels.size and labels.max() >= 10:
            raise DatasetError(f"{name}: a label in {root} is {labels.max()}, outside 0..9")
        splits.append((images[:, None], labels.astype(np.int64)))
    _check_splits(name, splits[0][0], splits[1][0], [os.path.join(root, IDX_FILES[i]) for i in (0, 2)])
    spec = DATASETS[name]
    return Dataset(name, *splits[0], *splits[1], mean=spec["mean"], std=spec["std"],
                   flip=spec["flip"], pad=spec["pad"])


def _check_splits(name: str, train: np.ndarray, test: np.ndarray, where: list[str]) -> None:
    """Both splits hold images, of one shape: a run would otherwise train a whole epoch and then
    fail (or silently evaluate a model on images of another size).

    Args:
        name: the data set's name, for the message.
        train: the training images (N, C, H, W).
        test: the test images.
        where: the files (or directories) of the training and the test images.

    Raises:
        DatasetError: naming the file and what is wrong.
    """
    for images, path in ((train, where[0]), (test, where[1])):
        if len(images) == 0 or 0 in images.shape[1:]:
            raise DatasetError(f"{name}: {path} holds no images (shape {images.shape}); replace it with a complete copy")
    if train.shape[1:] != test.shape[1:]:
        raise DatasetError(f"{name}: the test images in {where[1]} are {'x'.join(map(str, test.shape[1:]))}, the "
                           f"training images in {where[0]} {'x'.join(map(str, train.shape[1:]))}: the files do not "
                           "belong together")


# ------------------------------------------------------------------------------------ CIFAR-10

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only what the CIFAR batches contain: dicts, lists, strings and NumPy arrays."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"),
                ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 wrap bytes in it

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def _load_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(f"{path} not found") from None
    except Exception as exc:  # pickle raises many types on garbage
        raise DatasetError(f"{path} is not a CIFAR-10 pickled batch: {type(exc).__name__}: {exc}") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{path} is not a CIFAR-10 batch (a {type(batch).__name__}, not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    return data.reshape(-1, 3, 32, 32), _cifar_labels(labels, data.shape[0], path)


def _cifar_labels(labels: object, n: int, path: str) -> np.ndarray:
    """A batch's ``labels`` as int64, refused unless it is a list or array of ``n`` integers in 0..9
    (no silent truncation of ``1.7`` to class 1, no traceback for NaN, strings or huge ints)."""
    what = f"{path}: 'labels' must be N={n} integers in 0..9"
    if not isinstance(labels, list | tuple | np.ndarray):
        raise DatasetError(f"{what}, got a {type(labels).__name__}")
    try:
        arr = np.asarray(labels)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DatasetError(f"{what} ({exc})") from None
    if arr.size and arr.dtype.kind not in "iu":  # floats, bools, strings, objects (ints beyond 64 bits)
        first = arr.reshape(-1)[0]
        raise DatasetError(f"{what}, got {arr.dtype} values such as "
                           f"{first.item() if isinstance(first, np.generic) else first!r}")
    if arr.shape != (n,) or (arr.size and (arr.min() < 0 or arr.max() > 9)):
        raise DatasetError(f"{what}, got {arr.shape[0] if arr.ndim == 1 else 'shape ' + str(arr.shape)} labels "
                           f"in {arr.min() if arr.size else '-'}..{arr.max() if arr.size else '-'}")
    return arr.astype(np.int64)


def load_cifar10(root: str | os.PathLike) -> Dataset:
    """Load CIFAR-10 from a ``cifar-10-batches-py`` directory (or the directory above it).

    Args:
        root: the ``cifar-10-batches-py`` directory or its parent.

    Raises:
        DatasetError: a batch file is missing or malformed.
    """
    root = os.fspath(root)
    if os.path.isdir(os.path.join(root, "cifar-10-batches-py")):
        root = os.path.join(root, "cifar-10-batches-py")
    hint = (f"pass --data DIR holding the cifar-10-batches-py files ({', '.join(CIFAR_TRAIN_BATCHES)}, "
            f"{CIFAR_TEST_BATCH}) from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    try:
        train = [_load_cifar_batch(os.path.join(root, b)) for b in CIFAR_TRAIN_BATCHES]
        test = _load_cifar_batch(os.path.join(root, CIFAR_TEST_BATCH))
    except DatasetError as exc:
        raise DatasetError(f"cifar10: {exc}; {hint}") from None
    _check_splits("cifar10", train[0][0], test[0], [os.path.join(root, CIFAR_TRAIN_BATCHES[0]),
                                                    os.path.join(root, CIFAR_TEST_BATCH)])
    spec = DATASETS["cifar10"]
    return Dataset("cifar10", np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
                   test[0], test[1], mean=spec["mean"], std=spec["std"], flip=spec["flip"], pad=spec["pad"])


# Per-data-set constants; "default" is where the data lives when --data is not given.
DATASETS: dict[str, dict] = {
    "fashion-mnist": {"loader": load_mnist_like, "default": DEFAULT_FASHION_MNIST_DIR,
                      "mean": (0.2860,), "std": (0.3530,), "flip": True, "pad": 2},
    "mnist": {"loader": load_mnist_like, "default": None,
              "mean": (0.1307,), "std": (0.3081,), "flip": False, "pad": 2},  # digits: no flips
    "cifar10": {"loader": load_cifar10, "default": None,
                "mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616), "flip": True, "pad": 4},
}


def load_dataset(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Load data set ``name`` (a key of :data:`DATASETS`) from ``root`` or its default directory.

    Args:
        name: ``"fashion-mnist"``, ``"mnist"`` or ``"cifar10"``.
        root: the data directory (None: the data set's default).

    Raises:
        ValueError: unknown ``name``.
        DatasetError: missing or corrupt files (a one-line message saying what to do).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    spec = DATASETS[name]
    root = root if root is not None else spec["default"]
    if root is None:
        raise DatasetError(f"{name}: no default location; pass --data DIR")
    if spec["loader"] is load_mnist_like:
        return load_mnist_like(root, name)
    return spec["loader"](root)


# -------------------------------------------------------------------------------------- loader

class BatchLoader:
    """Shuffled, augmented, normalised mini-batches of a data split, reproducible per batch.

    The permutation of epoch ``e`` comes from ``SeedSequence([seed, e])`` and the crop offsets
    and flips of batch ``b`` from ``SeedSequence([seed, e, b])``, so :meth:`batches` can start
    at any batch and match an uninterrupted epoch exactly.

    The yielded arrays are buffers reused by the next batch: copy them to keep them.

    Args:
        images: ``uint8`` (N, C, H, W).
        labels: integer (N,).
        batch_size: images per batch.
        mean, std: per-channel constants on the [0, 1] scale.
        shuffle: draw a new permutation every epoch (else data order).
        augment: random crop with ``pad`` pixels of zero padding, and flips if ``flip``.
        pad: crop padding in pixels.
        flip: random horizontal flips (only when ``augment``).
        drop_last: drop the last partial batch (training keeps batch statistics comparable).
        seed: the seed of every random choice.
    """

    def __init__(self, images: npt.NDArray[np.uint8], labels: npt.ArrayLike, batch_size: int, *,
                 mean: tuple[float, ...], std: tuple[float, ...], shuffle: bool = True,
                 augment: bool = False, pad: int = 4, flip: bool = True, drop_last: bool = False,
                 seed: int = 0) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise TypeError(f"images must be a uint8 array (N, C, H, W), got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(f"mean and std need {channels} entries (std > 0), got {mean} and {std}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        if drop_last and len(images) < batch_size:
            raise ValueError(f"drop_last with batch_size={batch_size} leaves no batch of {len(images)} images")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment = int(batch_size), shuffle, augment
        self.pad, self.flip, self.drop_last, self.seed = (pad if augment else 0), flip, drop_last, int(seed)
        # (pixel / 255 - mean) / std for every byte value, per channel: one gather normalises.
        levels = np.arange(256, dtype=np.float64) / 255.0
        self._lut = np.stack([((levels - m) / s).astype(np.float32) for m, s in zip(mean, std)])
        c, h, w = images.shape[1:]
        p = self.pad
        self._padded = np.zeros((self.batch_size, c, h + 2 * p, w + 2 * p), np.uint8)  # border stays 0
        self._crop = np.empty((self.batch_size, c, h, w), np.uint8)
        self._x = np.empty((self.batch_size, c, h, w), np.float32)
        self._y = np.empty(self.batch_size, np.int64)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> npt.NDArray[np.int64]:
        """The image indices of ``epoch`` in the order they are served.

        Args:
            epoch: the epoch (seeds the permutation with the loader's seed).
        """
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.images))

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x, y)`` for batches ``start, start + 1, ...`` of ``epoch``.

        ``x`` is float32 (B, C, H, W), ``y`` int64 (B,); both are reused buffers.

        Args:
            epoch: the epoch.
            start: the first batch to serve (``0 <= start <= len(self)``; resuming mid-epoch).
        """
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in [0, {len(self)}], got {start}")
        order = self.order(epoch)
        for b in range(start, len(self)):
            yield self._assemble(order[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.batches(0)

    def _assemble(self, idx: np.ndarray, epoch: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        n, p = len(idx), self.pad
        x, y, crop = self._x[:n], self._y[:n], self._crop[:n]
        np.take(self.labels, idx, out=y)
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, b])
            offsets = rng.integers(0, 2 * p + 1, size=(2, n))
            flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
            h, w = crop.shape[2:]
            padded = self._padded[:n]
            np.take(self.images, idx, axis=0, out=padded[:, :, p:p + h, p:p + w], mode="clip")
            windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
            crop[...] = windows[np.arange(n), :, offsets[0], offsets[1]]  # (n, C, h, w)
            crop[flips] = crop[flips, :, :, ::-1]
        else:
            np.take(self.images, idx, axis=0, out=crop, mode="clip")
        for c in range(crop.shape[1]):
            np.take(self._lut[c], crop[:, c], out=x[:, c], mode="clip")
        return x, y
