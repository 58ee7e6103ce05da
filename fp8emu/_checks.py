"""Argument checks shared by the constructors: finite numbers in range, integers in range.

A NaN or infinite hyper-parameter does not fail where it is given; it turns the run's numbers
into NaN many steps later.  These checks make it fail at once, naming the argument.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_real", "check_int"]


def check_real(name: str, value: object, *, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float after checking it is a finite real number in the given interval.

    Raises:
        TypeError: ``value`` is not a real number (bools are refused too).
        ValueError: ``value`` is NaN, infinite or outside the interval.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if not math.isfinite(v) or too_low or too_high:
        interval = (("(" if low_open or math.isinf(low) else "[") + (f"{low:g}" if math.isfinite(low) else "-inf") + ", "
                    + (f"{high:g}" if math.isfinite(high) else "inf") + (")" if high_open or math.isinf(high) else "]"))
        raise ValueError(f"{name}={value!r} must be a finite number in {interval}")
    return v


def check_int(name: str, value: object, *, low: int = 0) -> int:
    """``value`` as an int after checking it is an integer >= ``low``.

    Raises:
        TypeError: ``value`` is not an integer (bools are refused too).
        ValueError: ``value`` < ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}={value} must be >= {low}")
    return int(value)
