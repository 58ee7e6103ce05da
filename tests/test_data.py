"""Data loaders on generated IDX / CIFAR files, corrupt and missing files, and the batch loader."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from fp8emu.data import (DEFAULT_FASHION_MNIST_DIR, BatchLoader, DatasetError, load_cifar10, load_dataset,
                         load_idx, load_mnist_like)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian dims, data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist_like(root, n_train=20, n_test=10, size=28, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    os.makedirs(root, exist_ok=True)
    for stem, array in arrays.items():
        data = idx_bytes(array)
        with open(os.path.join(root, stem + (".gz" if gz else "")), "wb") as f:
            f.write(gzip.compress(data) if gz else data)
    return arrays


def write_cifar(root, n_per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    root = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(root, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
                 b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)}
        with open(os.path.join(root, name), "wb") as f:
            pickle.dump(batch, f, protocol=2)
        batches[name] = batch
    return root, batches


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_like_round_trip(tmp_path, gz):
    arrays = write_mnist_like(tmp_path, gz=gz)
    ds = load_mnist_like(tmp_path)
    assert ds.train_images.shape == (20, 1, 28, 28) and ds.test_images.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(ds.train_images[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.train_labels.dtype == np.int64 and ds.flip and ds.image_shape == (1, 28, 28)
    small = ds.limit(train=5, test=3)
    assert len(small.train_images) == 5 and len(small.test_labels) == 3


def test_mnist_digits_are_not_flipped(tmp_path):
    write_mnist_like(tmp_path)
    assert not load_dataset("mnist", tmp_path).flip


def test_missing_file_says_what_to_install(tmp_path):
    write_mnist_like(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "t10k-labels-idx1-ubyte" in msg and "not found" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data DIR" in msg


@pytest.mark.parametrize("corrupt, expect", [
    (lambda d: d[:-1], "needs"),                             # truncated data
    (lambda d: d + b"\0", "needs"),                          # trailing bytes
    (lambda d: b"\x00\x00\x0d" + d[3:], "no valid IDX header"),   # float type code
    (lambda d: b"PK" + d[2:], "no valid IDX header"),        # not IDX at all
    (lambda d: d[:10], "truncated inside its IDX header"),   # 3 dims need 16 header bytes
    (lambda d: b"", "no valid IDX header"),
])
def test_corrupt_idx_is_reported(tmp_path, corrupt, expect):
    arrays = write_mnist_like(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(idx_bytes(arrays["train-images-idx3-ubyte"])))
    with pytest.raises(DatasetError, match=expect) as info:
        load_dataset("fashion-mnist", tmp_path)
    assert "\n" not in str(info.value)


def test_bad_gzip_and_mismatched_counts(tmp_path):
    write_mnist_like(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(19, np.uint8))))
    with pytest.raises(DatasetError, match="do not belong together"):
        load_mnist_like(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DatasetError, match="not a readable"):
        load_mnist_like(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(20, 10, np.uint8))))
    with pytest.raises(DatasetError, match="outside 0..9"):
        load_mnist_like(tmp_path)


def test_load_idx_shape(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x").write_bytes(idx_bytes(a))
    np.testing.assert_array_equal(load_idx(tmp_path / "x"), a)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("imagenet")


@pytest.mark.skipif(not os.path.exists(os.path.join(DEFAULT_FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    assert abs(ds.train_images.mean() / 255 - ds.mean[0]) < 1e-3


def test_cifar_round_trip(tmp_path):
    root, batches = write_cifar(tmp_path)
    for where in (tmp_path, root):  # the directory above cifar-10-batches-py works too
        ds = load_cifar10(where)
        assert ds.train_images.shape == (30, 3, 32, 32) and ds.test_images.shape == (6, 3, 32, 32)
        np.testing.assert_array_equal(ds.train_images[6:12].reshape(6, -1), batches["data_batch_2"][b"data"])
        assert ds.test_labels.tolist() == batches["test_batch"][b"labels"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload, expect", [
    (b"not a pickle", "not a CIFAR-10 pickled batch"),
    (pickle.dumps([1, 2, 3]), "not a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8 array"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "labels"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}), "labels"),
    (pickle.dumps({"data": _Evil()}), "refusing to unpickle"),
])
def test_corrupt_cifar_is_reported(tmp_path, payload, expect):
    root, _ = write_cifar(tmp_path)
    with open(os.path.join(root, "data_batch_3"), "wb") as f:
        f.write(payload)
    with pytest.raises(DatasetError, match=expect) as info:
        load_dataset("cifar10", tmp_path)
    assert "\n" not in str(info.value) and "data_batch_3" in str(info.value)


def test_cifar_missing(tmp_path):
    with pytest.raises(DatasetError, match="not found.*--data DIR"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="--data DIR"):
        load_dataset("cifar10")


# ---------------------------------------------------------------------------------- BatchLoader

def make_loader(n=10, c=1, size=6, batch=4, seed=0, **kw):
    images = np.random.default_rng(99).integers(0, 256, (n, c, size, size), dtype=np.uint8)
    labels = np.arange(n) % 10
    kw.setdefault("mean", (0.5,) * c)
    kw.setdefault("std", (0.25,) * c)
    return BatchLoader(images, labels, batch, seed=seed, **kw), images, labels


def collect(loader, epoch, start=0):
    return [(x.copy(), y.copy()) for x, y in loader.batches(epoch, start)]


def test_plain_batches_normalise_in_order():
    loader, images, labels = make_loader(shuffle=False)
    got = collect(loader, 0)
    assert len(loader) == len(got) == 3 and [len(y) for _, y in got] == [4, 4, 2]
    x = np.concatenate([g[0] for g in got])
    np.testing.assert_allclose(x, (images / 255.0 - 0.5) / 0.25, rtol=1e-6)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), labels)


def test_shuffle_is_a_permutation_and_differs_per_epoch():
    loader, _, labels = make_loader(n=40, batch=8)
    orders = [loader.order(e) for e in range(3)]
    assert all(sorted(o) == list(range(40)) for o in orders)
    assert not np.array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(np.concatenate([y for _, y in collect(loader, 1)]), labels[orders[1]])
    other, *_ = make_loader(n=40, batch=8, seed=1)
    assert not np.array_equal(other.order(0), orders[0])


def test_drop_last():
    loader, *_ = make_loader(n=10, batch=4, drop_last=True)
    assert len(loader) == 2 and all(len(y) == 4 for _, y in collect(loader, 0))
    with pytest.raises(ValueError, match="drop_last"):
        make_loader(n=3, batch=4, drop_last=True)


def test_augmentation_is_deterministic_and_resumable():
    a, *_ = make_loader(n=30, batch=4, augment=True, pad=2, seed=7)
    b, *_ = make_loader(n=30, batch=4, augment=True, pad=2, seed=7)
    full, again = collect(a, 2), collect(b, 2)
    for (x1, y1), (x2, y2) in zip(full, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    for (x1, y1), (x2, y2) in zip(full[3:], collect(b, 2, start=3)):  # resume mid-epoch
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(collect(a, 3)[0][0], full[0][0])


def reference_crop_flip(images, order, seed, epoch, b, batch, pad, flip):
    """Crop and flip one image at a time with np.pad: the readable twin of the loader."""
    idx = order[b * batch:(b + 1) * batch]
    rng = np.random.default_rng([seed, epoch, b])
    offsets = rng.integers(0, 2 * pad + 1, size=(2, len(idx)))
    flips = rng.random(len(idx)) < 0.5 if flip else np.zeros(len(idx), bool)
    h, w = images.shape[2:]
    out = []
    for j, i in enumerate(idx):
        img = np.pad(images[i], ((0, 0), (pad, pad), (pad, pad)))
        img = img[:, offsets[0, j]:offsets[0, j] + h, offsets[1, j]:offsets[1, j] + w]
        out.append(img[:, :, ::-1] if flips[j] else img)
    return np.stack(out)


@pytest.mark.parametrize("flip", [True, False])
def test_crop_and_flip_match_readable_twin(flip):
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    loader, images, _ = make_loader(n=9, c=3, size=5, batch=4, seed=3, augment=True, pad=2, flip=flip,
                                    mean=mean, std=std)
    order = loader.order(1)
    lut = lambda u, c: ((u / 255.0 - mean[c]) / std[c]).astype(np.float32)  # noqa: E731
    for b, (x, _) in enumerate(collect(loader, 1)):
        ref = reference_crop_flip(images, order, 3, 1, b, 4, 2, flip)
        expect = np.stack([lut(ref[:, c], c) for c in range(3)], axis=1)
        np.testing.assert_array_equal(x, expect)
    # the random choices really move pixels: the batch differs from the unaugmented one
    plain, *_ = make_loader(n=9, c=3, size=5, batch=4, seed=3, augment=False, mean=mean, std=std)
    assert not np.array_equal(collect(loader, 1)[0][0], collect(plain, 1)[0][0])


def test_buffers_are_reused():
    loader, *_ = make_loader(n=8, batch=4)
    (x0, _), (x1, _) = list(loader.batches(0))
    assert np.shares_memory(x0, x1)


@pytest.mark.parametrize("kwargs, expect", [
    ({"batch_size": 0}, "batch_size"),
    ({"mean": (0.1, 0.2)}, "mean and std"),
    ({"std": (0.0,)}, "mean and std"),
    ({"pad": -1}, "pad"),
])
def test_bad_loader_arguments(kwargs, expect):
    images = np.zeros((4, 1, 3, 3), np.uint8)
    args = {"batch_size": 2, "mean": (0.5,), "std": (0.5,), **kwargs}
    with pytest.raises(ValueError, match=expect):
        BatchLoader(images, np.zeros(4), args.pop("batch_size"), **args)
    with pytest.raises(TypeError, match="uint8"):
        BatchLoader(images.astype(np.float32), np.zeros(4), 2, mean=(0.5,), std=(0.5,))
    loader = BatchLoader(images, np.zeros(4), 2, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="start"):
        next(loader.batches(0, start=5))


def test_idx_header_whose_product_overflows_int64(tmp_path):
    """Dimensions whose product is 2^64 + 4: in int64 it wrapped to 4, matched the 4 data bytes,
    and reshape raised an uncaught ValueError."""
    from fp8emu.data import DatasetError, load_idx
    dims = [3340214413, 2761311370, 2]
    assert dims[0] * dims[1] * dims[2] == 2**64 + 4
    path = tmp_path / "x-idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *dims) + bytes(4))
    with pytest.raises(DatasetError, match="holds 20 bytes but its IDX header"):
        load_idx(path)


@pytest.mark.parametrize("labels, expect", [
    ([float("nan")] * 2, "got float64 values such as"),
    ([1.7] * 2, "got float64 values such as 1.7"),  # used to become class 1 silently
    ("ab", "got a str"),
    ([2 ** 70] * 2, "got object values"),
    ({1: 2}, "got a dict"),
    ([True, False], "got bool values"),
    ([[0, 1]], "got shape"),
])
def test_cifar_labels_that_are_not_integers(tmp_path, labels, expect):
    root, _ = write_cifar(tmp_path)
    with open(os.path.join(root, "data_batch_3"), "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, f, protocol=2)
    with pytest.raises(DatasetError, match=expect) as info:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_3: 'labels' must be N=2 integers in 0..9" in str(info.value) and "\n" not in str(info.value)


def test_idx_test_images_of_another_shape_or_none(tmp_path):
    write_mnist_like(tmp_path, n_train=4, n_test=2, size=8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((2, 6, 6), np.uint8))))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte are 1x6x6, the training images in .* 1x8x8"):
        load_mnist_like(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((0, 8, 8), np.uint8))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(0, np.uint8))))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte holds no images \(shape \(0, 1, 8, 8\)\)"):
        load_mnist_like(tmp_path)  # used to train an epoch, then divide by zero in evaluate


def test_cifar_test_batch_without_images(tmp_path):
    root, _ = write_cifar(tmp_path)
    with open(os.path.join(root, "test_batch"), "wb") as f:
        pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, f, protocol=4)
    with pytest.raises(DatasetError, match="test_batch holds no images"):
        load_dataset("cifar10", tmp_path)
