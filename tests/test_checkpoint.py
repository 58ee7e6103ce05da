"""Checkpoints: bit-exact round trips, atomic replacement under failures and kills, clear errors."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fp8emu import checkpoint as ckpt
from fp8emu.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint


def sample_state(value=1.0):
    rng = np.random.default_rng(5)
    return {
        "model": {"conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * value,
                  "bn.running_mean": np.array([np.nan, -0.0, np.inf], np.float32),
                  "bn.num_batches_tracked": np.int64(7)},
        "optimizer": {"lr": 0.1 * value, "momentum": [np.zeros(3, np.float16), None]},
        "scaler": {"scale": 65536.0, "good_steps": 3, "history": (1.5, float("inf"))},
        "rng": np.random.default_rng(3).bit_generator.state,  # 128-bit ints
        "loader": {"epoch": 2, "batch": 17}, "name": "paper-e5m2", "done": False,
        "half": np.float16(0.1), "empty": np.zeros((0, 2), np.float64),
    }


def assert_same(a, b, where="state"):
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    else:
        assert a == b, where


def test_round_trip_is_bit_exact(tmp_path):
    state = sample_state()
    save_checkpoint(tmp_path / "c.npz", state)
    back = load_checkpoint(tmp_path / "c.npz")
    assert_same(state, back)
    gen = np.random.default_rng()
    gen.bit_generator.state = back["rng"]
    assert gen.random() == np.random.default_rng(3).random()
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_replace_overwrites(tmp_path):
    save_checkpoint(tmp_path / "c.npz", sample_state(1.0))
    save_checkpoint(tmp_path / "c.npz", sample_state(2.0))
    assert load_checkpoint(tmp_path / "c.npz")["optimizer"]["lr"] == 0.2


@pytest.mark.parametrize("bad, expect", [
    ({1: 2}, "keys .* must be str"),
    ({"x": object()}, "is a object"),
    ({"x": np.array([object()])}, "object array"),
])
def test_unstorable_state_writes_nothing(tmp_path, bad, expect):
    with pytest.raises(TypeError, match=expect):
        save_checkpoint(tmp_path / "c.npz", bad)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="state must be a dict"):
        save_checkpoint(tmp_path / "c.npz", [1])


@pytest.mark.parametrize("failing", ["fsync", "replace", "interrupt"])
def test_failure_while_writing_keeps_previous(tmp_path, monkeypatch, failing):
    path = tmp_path / "c.npz"
    save_checkpoint(path, sample_state(1.0))
    before = path.read_bytes()

    def boom(*args):
        raise KeyboardInterrupt if failing == "interrupt" else OSError("disk on fire")
    monkeypatch.setattr(ckpt.os, "replace" if failing == "replace" else "fsync", boom)
    with pytest.raises(KeyboardInterrupt if failing == "interrupt" else OSError):
        save_checkpoint(path, sample_state(2.0))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]
    assert load_checkpoint(path)["optimizer"]["lr"] == 0.1


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from fp8emu import checkpoint as ckpt

    class Slow:                       # a file whose writes stall half-way, like a slow disk
        def __init__(self, f):
            self.f, self.n = f, 0
        def write(self, b):
            self.n += 1
            if self.n == 3:
                print("writing", flush=True)
                time.sleep(60)
            return self.f.write(b)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def __getattr__(self, name):
            return getattr(self.f, name)

    real_fdopen = os.fdopen
    ckpt.os.fdopen = lambda fd, mode: Slow(real_fdopen(fd, mode, 0))  # unbuffered
    ckpt.save_checkpoint(sys.argv[1], {"w": np.full(1_000_000, 2.0, np.float32), "lr": 0.2})
""")


def test_kill_during_write_keeps_previous(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.full(1_000_000, 1.0, np.float32), "lr": 0.1})
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(ckpt.__file__))))
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE,
                             env=env, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        temps = [p for p in tmp_path.iterdir() if p.name != "c.npz"]
        assert len(temps) == 1 and temps[0].stat().st_size > 0  # the new bytes go elsewhere
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["lr"] == 0.1


def test_damaged_files_are_reported(tmp_path):
    path = tmp_path / "c.npz"
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(path)
    save_checkpoint(path, sample_state())
    good = path.read_bytes()
    for damaged in (good[: len(good) // 2], b"", b"hello", good[:200] + bytes([good[200] ^ 0xFF]) + good[201:]):
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError, match="damaged or not an fp8emu checkpoint") as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)
    np.savez(path, x=np.zeros(3))  # a valid npz that is no checkpoint
    with pytest.raises(CheckpointError, match="damaged or not"):
        load_checkpoint(path)


def test_check_compatible():
    saved = {"model": "resnet18", "width": 16, "recipe": "fp32", "seed": 0}
    check_compatible(saved, {"model": "resnet18", "width": 16})
    with pytest.raises(CheckpointError, match=r"width: checkpoint has 16, this run 32; recipe") as info:
        check_compatible(saved, {"width": 32, "recipe": "paper-e5m2"}, "runs/x/checkpoint.npz")
    assert "runs/x/checkpoint.npz" in str(info.value)


def test_checkpoint_is_an_ordinary_file(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"x": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o666 & ~mask


# ---- crafted files: every failure is a CheckpointError, and loading is bounded by the file's size

def _npz_with_tree(path, tree_text):
    np.savez(path, __tree__=np.frombuffer(tree_text.encode(), np.uint8))


@pytest.mark.parametrize("tree, cause", [
    ('{"format": "%s", "state": ' % ckpt.FORMAT_TAG + "[" * 100_000 + "]" * 100_000 + "}", "RecursionError"),
    ('{"format": "%s", "state": ' % ckpt.FORMAT_TAG + '{"d": ' * 5000 + '{"v": 1}' + "}" * 5000 + "}",
     "RecursionError"),
    ('{"format": "%s", "state": [1]}' % ckpt.FORMAT_TAG, "AttributeError"),
    ('{"format": "%s", "state": {"a": [1]}}' % ckpt.FORMAT_TAG, "TypeError"),
    ('{"format": "%s", "state": {"v": {"x": 1}}}' % ckpt.FORMAT_TAG, "ValueError"),
    ('[1, 2]', "ValueError"),
])
def test_crafted_trees_raise_checkpoint_error(tmp_path, tree, cause):
    path = tmp_path / "c.npz"
    _npz_with_tree(path, tree)
    with pytest.raises(CheckpointError, match=f"damaged or not an fp8emu checkpoint \\({cause}") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_huge_shape_header_is_refused_before_allocating(tmp_path):
    """A 4 TiB shape in a 100-byte member: refused from the header, no MemoryError."""
    import io
    import zipfile
    header = np.lib.format.header_data_from_array_1_0(np.zeros(4, np.uint8))
    header["shape"] = (2**42,)
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(bytes(4))
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"x": 1})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("big.npy", member.getvalue())
    with pytest.raises(CheckpointError, match=r"declares shape \(4398046511104,\)"):
        load_checkpoint(path)


def test_compressed_member_is_refused_unread(tmp_path):
    """A zip bomb (a deflated member that expands ~1000x) is refused without inflating it."""
    import zipfile
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"x": 1})
    bomb = tmp_path / "bomb.npy"
    np.save(bomb, np.zeros(64 << 20, np.uint8))  # 64 MiB of zeros -> ~65 kB deflated
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(bomb, "bomb.npy")
    assert path.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="'bomb.npy' is compressed"):
        load_checkpoint(path)


def test_fortran_order_and_zero_size_members_load(tmp_path):
    state = {"f": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), "e": np.zeros((0, 5), np.int8)}
    save_checkpoint(tmp_path / "c.npz", state)
    back = load_checkpoint(tmp_path / "c.npz")
    assert np.array_equal(back["f"], state["f"]) and back["e"].shape == (0, 5) and back["e"].dtype == np.int8


def test_remove_stale_temporaries(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"x": 1})
    stale = [tmp_path / ".checkpoint.npz.k3j2.tmp", tmp_path / "checkpoint.npz.tmp"]
    for p in stale:
        p.write_bytes(b"x")
    other = tmp_path / ".other.npz.k3j2.tmp"
    other.write_bytes(b"x")
    assert sorted(ckpt.remove_stale_temporaries(path)) == sorted(str(p) for p in stale)
    assert not any(p.exists() for p in stale) and other.exists() and path.exists()
