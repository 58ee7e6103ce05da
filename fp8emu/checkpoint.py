"""Atomic, self-checking checkpoints of nested training state.

A checkpoint is a tree of dicts (string keys), lists, tuples, NumPy arrays, NumPy scalars
and plain Python scalars (``int``, ``float``, ``bool``, ``str``, ``None``): the model,
optimizer, loss-scaler, RNG and loader states plus epoch and step.  It is stored as an
uncompressed ``.npz`` (a zip: every member carries a CRC, so a damaged file is detected on
load) holding the arrays and one JSON document describing the tree.  Python floats travel
through ``repr`` and arrays keep their dtype, so a round trip is bit-exact.

Writing is atomic: the bytes go to a temporary file in the destination directory, are
``fsync``-ed, and only then ``os.replace`` the old checkpoint (then the directory is
``fsync``-ed).  A crash or kill at any moment leaves either the old or the new checkpoint,
never a mixture (and perhaps an orphan temporary file, which :func:`remove_stale_temporaries`
deletes).

Loading reads only what the file holds: members must be stored uncompressed (as
:func:`save_checkpoint` writes them), so a small file cannot expand into gigabytes, and
every array header must agree with its member's size before anything is allocated.
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "check_compatible", "remove_stale_temporaries",
           "FORMAT_TAG"]

FORMAT_TAG = "fp8emu-checkpoint-v1"
_TREE = "__tree__"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not belong to the run resuming from it."""


def _encode(node: Any, arrays: dict[str, np.ndarray], where: str) -> dict:
    """One tagged JSON node per value: d(ict), l(ist), t(uple), a(rray), s(calar, NumPy), v(alue)."""
    if isinstance(node, dict):
        bad = [k for k in node if not isinstance(k, str)]
        if bad:
            raise TypeError(f"checkpoint state: keys at {where or 'top level'} must be str, got {bad[0]!r}")
        return {"d": {k: _encode(v, arrays, f"{where}/{k}") for k, v in node.items()}}
    if isinstance(node, list | tuple):
        items = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(node)]
        return {"t" if isinstance(node, tuple) else "l": items}
    if isinstance(node, np.ndarray | np.generic):
        if node.dtype == object:
            raise TypeError(f"checkpoint state: {where} is an object array; only numeric arrays are stored")
        key = f"arr_{len(arrays)}"
        arrays[key] = np.asarray(node)
        return {"a" if isinstance(node, np.ndarray) else "s": key}
    if node is None or isinstance(node, bool | int | float | str):
        return {"v": node}
    raise TypeError(f"checkpoint state: {where} is a {type(node).__name__}; store arrays, scalars, "
                    "str, None, or dicts/lists/tuples of them")


def _decode(node: dict, arrays: Any) -> Any:
    (tag, payload), = node.items()
    if tag == "d":
        return {k: _decode(v, arrays) for k, v in payload.items()}
    if tag in ("l", "t"):
        items = [_decode(v, arrays) for v in payload]
        return tuple(items) if tag == "t" else items
    if tag == "a":
        return arrays[payload]
    if tag == "s":
        return arrays[payload][()]
    if tag == "v" and (payload is None or isinstance(payload, bool | int | float | str)):
        return payload
    raise ValueError(f"unknown node tag {tag!r} or a payload of the wrong type")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + ``os.replace``).

    Args:
        path: destination file; its directory must exist.
        state: the tree to store (see the module docstring for the allowed leaves).

    Raises:
        TypeError: a leaf of ``state`` cannot be stored; nothing is written then.
    """
    path = os.fspath(path)
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    arrays: dict[str, np.ndarray] = {}
    tree = json.dumps({"format": FORMAT_TAG, "state": _encode(state, arrays, "")})
    arrays[_TREE] = np.frombuffer(tree.encode(), np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _tmp_pattern(path: str) -> str:
    """The names of :func:`save_checkpoint`'s temporary files for ``path`` (``mkstemp``'s)."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{glob.escape(os.path.basename(path))}.*.tmp")


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete temporary files left beside ``path`` by a writer that was killed; return their names.

    Covers :func:`save_checkpoint`'s ``.NAME.*.tmp`` and the ``NAME.tmp`` of simpler atomic
    writers.  Call it only while no other process writes ``path``.

    Args:
        path: the file whose leftover temporaries to delete.
    """
    path = os.fspath(path)
    removed = []
    for tmp in glob.glob(_tmp_pattern(path)) + glob.glob(glob.escape(path) + ".tmp"):
        try:
            os.unlink(tmp)
            removed.append(tmp)
        except OSError:  # already gone, or not ours to delete: the next save still works
            pass
    return removed


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, its header checked against its size before any allocation."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"member {info.filename!r} is compressed; checkpoints store members uncompressed")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError(f"member {info.filename!r} holds Python objects")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise ValueError(f"member {info.filename!r} declares shape {shape} of {dtype} ({nbytes} bytes) "
                             f"in {info.file_size} bytes")
        data = f.read()  # to the end: zipfile checks the CRC there
    if len(data) != nbytes:
        raise ValueError(f"member {info.filename!r} is truncated")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the checkpoint file.

    Raises:
        CheckpointError: the file is missing, truncated, damaged (zip CRC), not a checkpoint,
            or crafted (compressed members, array headers that disagree with the sizes,
            nesting too deep to decode).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"member {info.filename!r} is not a .npy array")
                arrays[info.filename[:-4]] = _read_member(zf, info)
        doc = json.loads(arrays.pop(_TREE).tobytes().decode())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
            raise ValueError(f"format tag {doc.get('format') if isinstance(doc, dict) else None!r}, "
                             f"expected {FORMAT_TAG!r}")
        return _decode(doc["state"], arrays)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError, RecursionError, MemoryError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged or not an fp8emu checkpoint "
                              f"({type(exc).__name__}: {_one_line(exc)}); start the run again with --overwrite "
                              "(which replaces it), or choose another --out") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:200] + "..."


def check_compatible(saved: dict, expected: dict, path: str | os.PathLike = "checkpoint") -> None:
    """Raise if the configuration ``saved`` in a checkpoint differs from the run's ``expected``.

    Only the keys of ``expected`` are compared (e.g. model, width, recipe, seed, batch size).

    Args:
        saved: the configuration stored in the checkpoint.
        expected: the configuration of this run (its keys are the ones compared).
        path: the checkpoint's path, for the message.

    Raises:
        CheckpointError: naming every differing key with both values.
    """
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, this run {v!r}" for k, v in expected.items()
             if saved.get(k) != v]
    if diffs:
        raise CheckpointError(f"{os.fspath(path)} belongs to a different run ({'; '.join(diffs)}); "
                              "use the same arguments or a new --out directory")
