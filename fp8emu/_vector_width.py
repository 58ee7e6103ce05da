"""Ask LLVM for 512-bit vectors in one Numba kernel, whatever its CPU tuning prefers.

LLVM tunes the Intel AVX-512 CPUs (Skylake-SP through Sapphire Rapids, and the client parts
such as Rocket Lake) with ``prefer-256-bit``: its loop vectoriser then emits ``ymm`` code,
because on the first AVX-512 parts 512-bit instructions lowered the clock for everything that
followed.  AMD's Zen 4 and Zen 5 have no such tuning and get ``zmm`` code.  For the rounding
kernels, integer bit manipulation in 32- and 64-bit lanes, the 256-bit choice is measurably
slower on the Intel Xeons this project runs on (issue 19, ``docs/results/benchmarks.md``): with
512-bit code, exact stochastic rounding of float32 takes 0.67-0.70x the time, ``encode`` of
float32 0.66-0.70x, ``quantize`` of float64 0.58-0.76x.  Kernels with a 16-bit array (float16
and bfloat16 inputs, bfloat16 codes) measured 1-8 % slower in 512-bit code there, so they keep
the CPU's preference, except loops that convert 16-bit elements to float32 bits and compute in
32- and 64-bit lanes (the float32 kernels on float16 and bfloat16 arrays,
:func:`prefer_512_bit_vectors_converting`): float16 exact SR took 0.63-0.71x the time with
512-bit code there.

:func:`prefer_512_bit_vectors`, called in a kernel's loop body with the kernel's input and
output arrays, sets the LLVM function attribute ``"prefer-vector-width"="512"`` on the function
being compiled (for a ``prange`` loop: Numba's outlined loop function) unless one of the two
has 16-bit elements.  X86's backend reads the attribute per function, so it overrides the CPU's
tuning for that function alone; other Numba code in the process keeps its own settings (unlike
``NUMBA_CPU_FEATURES``, which is global).  It emits no instruction and changes no result: the
lanes compute the same operations whatever the vector width (integer arithmetic, and float32
additions that are never reassociated: no fast-math flags).  On CPUs without 512-bit vectors
(AVX2) the widest legal vector stays the limit, so the attribute changes nothing there.

llvmlite checks function attributes against a fixed list of flag names, which has no key-value
string attributes; the attribute goes into the set directly.  Should a later llvmlite store
attributes differently, the call does nothing and the kernel compiles as before.

Table lookups are the other way round: :func:`keep_gathers_scalar` keeps the loop of a kernel
that gathers from a table scalar where LLVM's vector gathers measured slower than one load per
element (issue 19, ``docs/results/benchmarks.md``, 2026-12-07; same code, one loop or the other):

* indices of 64 bits (the float64 class lookups, ``vgatherqpd``): 1.7x the time of scalar
  loads at 16-64 K elements on the Intel CI host, about 2.1x on the GPU machine's Xeon;
  on the Zen 3 the scalar twin ran 1.15x faster than the vector kernel once its launch cost
  is taken out;
* elements of 8 or 16 bits by 8- or 16-bit indices (decode into float16, bfloat16 or codes;
  the 16-bit pattern tables): x86 has no gather of such elements, and LLVM emulates one with
  ``vpinsrw``/``vpextr`` sequences, 1.5-2.5x the time of scalar loads on both Intel hosts
  measured; on the Zen 3 the emulated form ran about 1.6x faster than the scalar loop (launch
  cost taken out), so AMD CPUs keep it.

32-bit elements (decode into float32, the float32 class lookup into values) keep their vector
gathers: 0.57-0.94x the scalar time on the Intel hosts at most sizes (one run on the GPU
machine's Xeon read 1.67x for uint8 -> float32 at 4 M elements and 0.46x at 16 K).  So do the float32 class lookups into
8-bit codes (32-bit indices): kept scalar, ``encode`` of float32 in round-to-odd took 0.79x the
time on the Intel CI host but 1.33x on the GPU machine's Xeon.

Numba's on-disk cache tells a kernel's code stale only when the kernel's own file changes: after
editing this module, touch ``fp8emu/_kernels.py`` (or clear ``__pycache__``) before measuring, or
the kernels cached from it keep the code of the previous rule.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["prefer_512_bit_vectors", "prefer_512_bit_vectors_converting", "keep_gathers_scalar",
           "VECTOR_WIDTH_ATTRIBUTE"]

#: The LLVM function attribute, as it appears in the function's IR.
VECTOR_WIDTH_ATTRIBUTE = '"prefer-vector-width"="512"'


def _mark(function, attribute: str = VECTOR_WIDTH_ATTRIBUTE) -> bool:
    """Add ``attribute`` (by default :data:`VECTOR_WIDTH_ATTRIBUTE`) to an llvmlite
    ``ir.Function``; False where llvmlite's attribute set is not the plain ``set`` subclass this
    relies on."""
    attributes = getattr(function, "attributes", None)
    if not isinstance(attributes, set):
        return False
    set.add(attributes, attribute)      # past llvmlite's list of flag names
    return True


def _wants_512(array_types) -> bool:
    """Whether the kernel of these array argument types gets 512-bit vectors: unless one has
    16-bit elements (see the module docstring)."""
    return all(getattr(getattr(t, "dtype", None), "bitwidth", 0) != 16 for t in array_types)


@intrinsic
def prefer_512_bit_vectors(typingctx, source, target):
    """Mark the calling function for 512-bit vectors unless ``source`` or ``target`` (the
    kernel's input and output arrays) has 16-bit elements; emits no code."""
    if not (isinstance(source, types.Array) and isinstance(target, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        if _wants_512(signature.args):
            _mark(builder.function)
        return context.get_dummy_value()
    return types.void(source, target), codegen


@intrinsic
def prefer_512_bit_vectors_converting(typingctx, source, target):
    """:func:`prefer_512_bit_vectors` for a loop that converts 16-bit elements to float32 bits
    and computes in 32- and 64-bit lanes: marks the calling function whatever the arrays'
    element widths; emits no code."""
    if not (isinstance(source, types.Array) and isinstance(target, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        _mark(builder.function)
        return context.get_dummy_value()
    return types.void(source, target), codegen


#: LLVM's names of AMD CPUs start so (``znver3``, ``bdver2``...); the others are Intel's or generic.
_AMD_CPU_PREFIXES = ("znver", "bdver", "btver", "amdfam", "barcelona", "athlon", "opteron", "k8")


def _cpu_name() -> str:
    """The CPU Numba compiles for: ``NUMBA_CPU_NAME`` if set, else the host's."""
    from numba.core import config
    from llvmlite import binding
    name = config.CPU_NAME
    return name if name and name != "host" else binding.get_host_cpu_name()


def _scalar_gathers(index_bits: int, element_bits: int, cpu: str) -> bool:
    """Whether a table lookup by ``index_bits``-bit indices of ``element_bits``-bit elements
    stays scalar on ``cpu`` (the module docstring's measurements)."""
    if index_bits == 64:
        return True
    return index_bits <= 16 and element_bits <= 16 and not cpu.startswith(_AMD_CPU_PREFIXES)


def _bits(array_type) -> int:
    return getattr(getattr(array_type, "dtype", None), "bitwidth", 0)


@intrinsic
def keep_gathers_scalar(typingctx, indices, target):
    """Keep the calling loop scalar where :func:`_scalar_gathers` says so for the element widths
    of ``indices`` (the array whose elements index the table) and ``target`` (the output, of
    the table's element type) on the CPU compiled for; emits no code.  It sets LLVM's
    ``noimplicitfloat`` attribute on the function being compiled (for a ``prange`` loop:
    Numba's outlined loop function), which the loop and SLP vectorisers honour by leaving the
    function's loops scalar; explicit float loads and stores (a float64 table's values) keep
    their registers.  Numba's on-disk cache keys its code by the CPU's name and features, so a
    cached kernel follows the CPU it was compiled for."""
    if not (isinstance(indices, types.Array) and isinstance(target, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        if _scalar_gathers(_bits(signature.args[0]), _bits(signature.args[1]), _cpu_name()):
            _mark(builder.function, "noimplicitfloat")
        return context.get_dummy_value()
    return types.void(indices, target), codegen
