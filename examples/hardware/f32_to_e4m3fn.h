#ifndef F32_TO_E4M3FN_H
#define F32_TO_E4M3FN_H
#include <stdint.h>

/* float32 bit pattern -> E4M3FN code, round to nearest even; saturate: overflow -> +-448, else NaN. */
uint8_t f32_to_e4m3fn(uint32_t x, int saturate);

#endif
