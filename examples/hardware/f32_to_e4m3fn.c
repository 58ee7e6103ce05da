/* float32 -> E4M3FN (OCP FP8), round to nearest, ties to even: the C twin of f32_to_e4m3fn.v,
 * line for line (see the bit picture there).  PLANT_TIES_AWAY and PLANT_FTZ plant the same bugs. */
#include "f32_to_e4m3fn.h"

uint8_t f32_to_e4m3fn(uint32_t x, int saturate)
{
    uint32_t s = x >> 31, e = (x >> 23) & 0xFFu, m = x & 0x7FFFFFu;
    uint32_t sig = (e ? 0x800000u : 0u) | m; /* the significand with its hidden bit */
    int exp_unb = (int)e - 127;
    /* quantum 2^(exp_unb-3) for normal results, 2^-9 below 2^-6; past 25 bits everything is < half */
    int shift = exp_unb >= -6 ? 20 : (14 - exp_unb > 25 ? 25 : 14 - exp_unb);
    uint32_t k = sig >> shift, rem = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    int up = rem > half || (rem == half && (k & 1u));
#ifdef PLANT_TIES_AWAY
    if (exp_unb == 0) up = rem >= half;
#endif
    uint32_t mag = (exp_unb >= -6 ? (uint32_t)(exp_unb + 6) << 3 : 0u) + k + (uint32_t)up;
#ifdef PLANT_FTZ
    if (exp_unb < -6) mag = 0;
#endif
    if (e == 0xFFu && m != 0u)
        return 0x7F; /* NaN -> NaN */
    if (e == 0xFFu || mag > 126u) /* Inf, or past 448 after rounding */
        return saturate ? (uint8_t)((s << 7) | 0x7Eu) : 0x7F;
    return (uint8_t)((s << 7) | mag);
}
