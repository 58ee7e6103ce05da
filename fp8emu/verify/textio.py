"""Reading and writing the verification files: hex word tables, ``.npz``, stdin/stdout.

The text files are tables of hexadecimal words, one case per line, words separated by spaces,
with comment lines that start with ``//`` (format v2: what Verilog's ``$readmemh`` skips) or
``#`` (format v1, still read).  The leading comment lines are the header; its ``key=value``
tokens describe the file.  A trailing ``// note`` after the words of a line is a comment too.

A file fp8emu writes ends with an end line, ``// end: N cases``, and ends every line with a newline,
so a file cut off anywhere (mid-line, or exactly at a line boundary) is refused rather than read
as fewer cases: see :func:`check_complete`.

Every error in a file is a :class:`FileFormatError` that names the file and the line
(``v.txt:7: ...``), so the command line can print one precise line instead of a traceback.
``-`` as a path means stdin (reading) or stdout (writing); what was read is recognised by its
content (a ``.npz`` is a zip archive), never by its name.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import sys
import tempfile
from typing import Iterable

import numpy as np

__all__ = ["FileFormatError", "Column", "Table", "read_bytes", "is_npz", "load_npz", "parse_table", "hex_lines",
           "write_bytes", "display_name", "end_line", "check_complete", "check_last_line"]

STDIO = "-"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive with members / an empty one


class FileFormatError(ValueError):
    """A file that cannot be read as what it should be; ``str()`` is ``"path:line: message"``."""

    def __init__(self, name: str, message: str, line: int | None = None):
        self.name, self.line, self.message = name, line, message
        super().__init__(f"{name}:{line}: {message}" if line is not None else f"{name}: {message}")


def display_name(path: str | os.PathLike, writing: bool = False) -> str:
    """How a path is named in messages.

    Args:
        path: a file path, or ``-``.
        writing: name ``-`` as ``<stdout>`` (else ``<stdin>``).

    Returns:
        ``str(path)``, or ``<stdin>`` / ``<stdout>`` for ``-``.
    """
    return ("<stdout>" if writing else "<stdin>") if str(path) == STDIO else str(path)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of ``path`` (``-``: stdin).

    Args:
        path: the file, or ``-`` for stdin.

    Returns:
        The bytes read.

    Raises:
        FileFormatError: the file cannot be opened or read (the OS's reason in the message).
    """
    if str(path) == STDIO:
        return sys.stdin.buffer.read()
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise FileFormatError(str(path), exc.strerror or str(exc)) from None


def is_npz(data: bytes) -> bool:
    """True when ``data`` is a zip archive (what ``np.savez`` writes).

    Args:
        data: the content of a file.
    """
    return data[:4] in _ZIP_MAGIC


def load_npz(data: bytes, name: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` held in memory.

    Args:
        data: the content of the ``.npz``.
        name: the file's name, for messages.

    Returns:
        ``{array name: array}``.

    Raises:
        FileFormatError: not a readable ``.npz`` (or it holds pickled objects).
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, pickle and format errors all mean "not a valid .npz"
        raise FileFormatError(name, f"not a readable .npz archive ({exc})") from None


def write_bytes(path: str | os.PathLike, chunks: Iterable[bytes]) -> pathlib.Path:
    """Write ``chunks`` to ``path`` atomically (``-``: stdout); returns ``path`` as a Path.

    A file is written to a temporary sibling and renamed into place, so a crash or an error in
    a generator of ``chunks`` never leaves a half-written file under the final name.

    Args:
        path: the file, or ``-`` for stdout.
        chunks: the bytes to write, in order (may be a generator).

    Returns:
        ``path`` as a :class:`pathlib.Path` (``Path("-")`` for stdout).
    """
    if str(path) == STDIO:
        out = sys.stdout.buffer
        for c in chunks:
            out.write(c)
        out.flush()
        return pathlib.Path(STDIO)
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            for c in chunks:
                fh.write(c)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


# ---- hex word tables --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a table: its name and its width in bits (the words have ``ceil(bits / 4)``
    hex digits; a word with more digits, or a value of ``2**bits`` or more, is an error)."""

    name: str
    bits: int

    @property
    def digits(self) -> int:
        return (self.bits + 3) // 4


@dataclasses.dataclass
class Table:
    """A parsed text file: its header and its body rows, not yet converted to numbers."""

    name: str
    header: list[str]  # the leading comment lines, without their comment marker
    meta: dict[str, str]  # the header's key=value tokens
    rows: list[list[bytes]] | None  # the words of each row (slow path), or None when ``fast`` holds them
    lines: list[int]  # 1-based line number of each row (slow path)
    fast: np.ndarray | None = None  # fixed-width rows as an (n, width) uint8 array (fast path)
    first_line: int = 0  # line number of the first fast row
    footer: list[str] = dataclasses.field(default_factory=list)  # the trailing comment lines, without marker
    unterminated: bool = False  # the last row's line has no newline (a cut-off file, or a sloppy writer)

    def line_of(self, i: int) -> int:
        """The 1-based line number of row ``i``."""
        return self.first_line + i if self.fast is not None else self.lines[i]

    def last_words(self) -> list[bytes]:
        """The words of the last row (empty for an empty body)."""
        if not len(self):
            return []
        return bytes(self.fast[-1, :-1]).split() if self.fast is not None else self.rows[-1]

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else int(self.fast.shape[0])

    def ncols(self) -> int | None:
        """The number of words per row (None for an empty body; raises when rows differ)."""
        if self.fast is not None:
            return int(np.count_nonzero(self.fast[0, :-1] == ord(" "))) + 1
        if not self.rows:
            return None
        n = len(self.rows[0])
        for i, (r, ln) in enumerate(zip(self.rows, self.lines)):
            if len(r) != n:
                cut = (": the last line ends without a newline, the file looks cut off"
                       if self.unterminated and i == len(self.rows) - 1 else "")
                raise FileFormatError(self.name, f"{len(r)} words, but the first row has {n}{cut}", ln)
        return n

    def columns(self, layout: list[Column], exact: bool = False) -> list[np.ndarray]:
        """The body as uint64 arrays, one per column of ``layout`` (which must match the width).

        Args:
            layout: the expected words of a line.
            exact: every word must have exactly its column's digits (what fp8emu writes: a shorter
                word means a cut-off or edited file).

        Returns:
            One uint64 array per column, one element per row.

        Raises:
            FileFormatError: a row with another number of words, a word that is not hex, has
                more digits than its column, or a value out of the column's range.
        """
        if len(self) == 0:
            return [np.zeros(0, np.uint64) for _ in layout]
        n = self.ncols()
        if n != len(layout):
            ln = self.first_line if self.fast is not None else self.lines[0]
            raise FileFormatError(self.name, f"{n} words per line, expected {len(layout)} "
                                  f"({' '.join(c.name for c in layout)})", ln)
        return self._fast_columns(layout, exact) if self.fast is not None else self._slow_columns(layout, exact)

    def _slow_columns(self, layout: list[Column], exact: bool) -> list[np.ndarray]:
        out = [np.empty(len(self.rows), np.uint64) for _ in layout]
        for i, (row, ln) in enumerate(zip(self.rows, self.lines)):
            for j, (word, col) in enumerate(zip(row, layout)):
                out[j][i] = _word(word, col, self.name, ln, exact)
        return out

    def _fast_columns(self, layout: list[Column], exact: bool) -> list[np.ndarray]:
        buf = self.fast
        digits = _HEX_VALUE[buf[:, :-1]]
        bounds = [-1, *np.flatnonzero(buf[0, :-1] == ord(" ")).tolist(), buf.shape[1] - 1]
        cols = []
        for (lo, hi), col in zip(zip(bounds, bounds[1:]), layout):
            part = digits[:, lo + 1:hi]
            bad = (part == 255).any(axis=1)
            if part.shape[1] > col.digits or (exact and part.shape[1] != col.digits) or bad.any():
                i = int(np.argmax(bad)) if bad.any() else 0  # let the slow path word the error
                _word(bytes(buf[i, lo + 1:hi]), col, self.name, self.first_line + i, exact)
            v = np.zeros(part.shape[0], dtype=np.uint64)
            for j in range(part.shape[1]):
                v = (v << np.uint64(4)) | part[:, j].astype(np.uint64)
            over = v >> np.uint64(col.bits) != 0 if col.bits < 64 else np.zeros(v.shape, bool)
            if over.any():
                i = int(np.argmax(over))
                _word(bytes(buf[i, lo + 1:hi]), col, self.name, self.first_line + i)
            cols.append(v)
        return cols


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _HEX_VALUE[_c] = _HEX_VALUE[ord(chr(_c).lower())] = _i


def _word(word: bytes, col: Column, name: str, line: int, exact: bool = False) -> int:
    """One hex word, validated against its column (raises FileFormatError with the line); ``exact``:
    it must have exactly the column's digits."""
    text = word.decode(errors="replace")
    if not word or (_HEX_VALUE[np.frombuffer(word, np.uint8)] == 255).any():
        raise FileFormatError(name, f"{col.name} {text!r} is not a hexadecimal word", line)
    if len(word) > col.digits:
        raise FileFormatError(name, f"{col.name} {text!r} has {len(word)} hex digits; {_a(col.bits)}-bit word has "
                              f"at most {col.digits}", line)
    if exact and len(word) != col.digits:
        raise FileFormatError(name, f"{col.name} {text!r} has {len(word)} hex digits, but fp8emu writes "
                              f"{col.digits}: the file is cut off or edited; write it again", line)
    value = int(text, 16)
    if value >> col.bits:
        raise FileFormatError(name, f"{col.name} {text!r} is out of range for {_a(col.bits)}-bit word "
                              f"(at most {(1 << col.bits) - 1:X})", line)
    return value


def _a(bits: int) -> str:
    """"a 16" / "an 8" (the article of a spoken number)."""
    return f"an {bits}" if str(bits).startswith("8") or bits in (11, 18) else f"a {bits}"


def _is_comment(line: bytes) -> bool:
    return line.startswith(b"//") or line.startswith(b"#")


def parse_table(data: bytes, name: str) -> Table:
    """Split a text file into its header (leading comment lines) and its rows of words.

    Args:
        data: the content of the file.
        name: the file's name, for messages.

    Returns:
        The :class:`Table`; its words are converted (and checked) by :meth:`Table.columns`.

    Raises:
        FileFormatError: the file is not text.
    """
    if b"\0" in data[:4096]:
        raise FileFormatError(name, "not a text file (binary data)")
    header, pos, line = [], 0, 1
    while pos < len(data):  # the header: leading comment and blank lines
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        s = data[pos:end].strip()
        if s and not _is_comment(s):
            break
        if s:
            header.append(s.lstrip(b"/#").decode(errors="replace").strip())
        pos, line = end + 1, line + 1
    meta = {}
    for h in header:
        for tok in h.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                meta[k] = v
    body, footer = _split_footer(data[pos:])
    unterminated = bool(body) and not body.endswith(b"\n")
    fast = _fixed_width(body)
    if fast is not None:
        return Table(name, header, meta, None, [], fast, line, footer, unterminated)
    rows, lines = [], []
    for i, raw in enumerate(body.split(b"\n")):
        s = raw.split(b"//", 1)[0].strip()
        if not s or s.startswith(b"#"):
            continue
        rows.append(s.split())
        lines.append(line + i)
    return Table(name, header, meta, rows, lines, footer=footer, unterminated=unterminated)


def _split_footer(body: bytes) -> tuple[bytes, list[str]]:
    """The body without its trailing comment and blank lines, and those comments (without marker),
    so that an end line leaves the rows fixed-width (the fast path)."""
    end, footer = len(body), []
    while end > 0:
        start = body.rfind(b"\n", 0, end - 1) + 1  # the start of the last line left
        s = body[start:end].strip()
        if s and not _is_comment(s):
            break
        if s:
            footer.insert(0, s.lstrip(b"/#").decode(errors="replace").strip())
        end = start
    return body[:end], footer


# ---- completeness: the end line ----------------------------------------------------------------------
_END_PREFIX = "end:"


def end_line(cases: int, marker: str = "//") -> bytes:
    """The line fp8emu writes last in a vectors file: ``// end: N cases``.

    A file cut exactly at a line boundary loses it (or the count disagrees), which a reader can
    tell from an intact file; the header's ``cases=N`` says the same up front.

    Args:
        cases: the number of case lines written.
        marker: the comment marker.
    """
    return f"{marker} {_END_PREFIX} {cases} cases\n".encode()


def check_complete(table: Table, allow_no_end_line: bool = False, version: str = "") -> None:
    """Refuse a vectors file that is not whole: its last line has no newline, the header's
    ``cases=N`` or the end line's count disagrees with the lines read, or the end line is missing.

    Args:
        table: the parsed file.
        allow_no_end_line: accept a file without an end line (format v1, or v2 written before
            fp8emu wrote one); a cut at a line boundary then goes unnoticed, a cut mid-line does not.
        version: the file's format version (``v1`` files never have an end line: they are accepted
            only with ``allow_no_end_line``, and the message says so).

    Raises:
        FileFormatError: naming the file, the line, what is wrong and what to do.
    """
    n, name = len(table), table.name
    if table.unterminated:
        raise FileFormatError(name, "the last line ends without a newline: the file is cut off (fp8emu ends every "
                              "line with one); write it again", table.line_of(n - 1))
    if "cases" in table.meta:
        try:
            declared = int(table.meta["cases"])
        except ValueError:
            raise FileFormatError(name, f"cases={table.meta['cases']!r} in the header is not a number") from None
        if declared != n:
            raise FileFormatError(name, f"the header says cases={declared}, but the file holds {n} case lines: it is "
                                  "cut off or edited; write it again")
    ends = [h for h in table.footer if h.startswith(_END_PREFIX)]
    if ends:
        words = ends[-1].split()
        if len(words) != 3 or words[2] != "cases" or not words[1].isdigit() or int(words[1]) != n:
            raise FileFormatError(name, f"the end line {ends[-1]!r} does not match the {n} case lines read: the file "
                                  "is cut off or edited; write it again")
    elif not allow_no_end_line:
        why = ("a format v1 file (from an earlier fp8emu) has none" if version == "v1" else
               "the file is cut off, or was written by an fp8emu that did not write one")
        raise FileFormatError(name, f"no end line ('// {_END_PREFIX} N cases') after the {n} case lines: {why}. "
                              "Write it again with `fp8emu vectors`, or accept it without this check "
                              "(--allow-no-end-line; a file cut at a line boundary then passes unnoticed)")


def check_last_line(table: Table, layout: list[Column]) -> None:
    """Refuse a results file whose last line has no newline and a word shorter than its column:
    a file cut off mid-word (``01`` cut to ``0`` reads as ``00``).  A complete last line without
    a newline is accepted (harnesses write them); a lost whole line is caught by coverage.

    Args:
        table: the parsed results file.
        layout: the words of a line.

    Raises:
        FileFormatError: the line, the short word and what to do.
    """
    if not table.unterminated:
        return
    for word, col in zip(table.last_words(), layout):
        if len(word) < col.digits:
            raise FileFormatError(table.name, f"the last line ends without a newline and its {col.name} "
                                  f"{word.decode(errors='replace')!r} has {len(word)} of {col.digits} hex digits: the "
                                  "file looks cut off; end every line with a newline", table.line_of(len(table) - 1))


def _fixed_width(body: bytes) -> np.ndarray | None:
    """The body as an (n, width) array when every line has the same layout of hex words and
    single spaces (what fp8emu and simple harnesses write): parsed without per-line Python."""
    first = body.find(b"\n")
    width = first + 1
    if first <= 0 or len(body) % width:
        return None
    buf = np.frombuffer(body, dtype=np.uint8).reshape(-1, width)
    if not (buf[:, -1] == ord("\n")).all():
        return None
    row = buf[0, :-1]
    spaces = np.flatnonzero(row == ord(" "))
    if spaces.size and (spaces[0] == 0 or spaces[-1] == width - 2 or (np.diff(spaces) == 1).any()):
        return None  # leading, trailing or double spaces: the general path
    if not (buf[:, spaces] == ord(" ")).all() or (_HEX_VALUE[np.delete(buf[:, :-1], spaces, axis=1)] == 255).any():
        return None
    return buf


# ---- writing --------------------------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def hex_lines(columns: list[tuple[np.ndarray, int]]) -> bytes:
    """Lines of space-separated upper-case hex words, ``(values, digits)`` per column, as bytes.

    Vectorised: every digit is a 4-bit slice ``(v >> 4*j) & 0xF`` looked up in ``_HEX``, written
    into one (n, line length) uint8 array; no per-line Python.

    Args:
        columns: ``(values, digits)`` per word of a line; all ``values`` of one length.

    Returns:
        The lines as ASCII bytes (empty when there are no rows).
    """
    n = columns[0][0].size
    if n == 0:
        return b""
    width = sum(d for _, d in columns) + len(columns)  # digits, separators and the newline
    buf = np.empty((n, width), dtype=np.uint8)
    pos = 0
    for values, digits in columns:
        v = np.asarray(values).reshape(-1).astype(np.uint64)
        for j in range(digits):
            buf[:, pos + j] = _HEX[((v >> np.uint64(4 * (digits - 1 - j))) & np.uint64(0xF)).astype(np.intp)]
        pos += digits
        buf[:, pos] = ord(" ")
        pos += 1
    buf[:, -1] = ord("\n")
    return buf.tobytes()
