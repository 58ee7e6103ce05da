/* Driver: reads fp8emu conversion vectors (format v2, float32 -> e4m3fn) with an fscanf loop and
 * writes one "input code" line per case for `fp8emu check`.
 *
 *   cc -std=c99 -o driver driver.c f32_to_e4m3fn.c
 *   ./driver v.txt r.txt
 *
 * A line starting with `//` is a comment; the header's "saturate=1" selects the saturating
 * conversion.  Every other line is three hex words: input, expected code, flags. */
#include <stdio.h>
#include <string.h>

#include "f32_to_e4m3fn.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s VECTORS RESULTS\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "r"), *out = fopen(argv[2], "w");
    if (!in || !out) {
        perror("driver");
        return 2;
    }
    int saturate = 0;
    long cases = 0;
    char comment[1024];
    unsigned int x, expected, flags;
    fprintf(out, "// fp8emu results v2: f32_to_e4m3fn.c\n");
    for (;;) {
        if (fscanf(in, " //%1023[^\n]", comment) == 1) { /* a comment line (the header) */
            if (strstr(comment, "saturate=1"))
                saturate = 1;
            continue;
        }
        int got = fscanf(in, "%x %x %x", &x, &expected, &flags);
        if (got == EOF)
            break;
        if (got != 3) {
            fprintf(stderr, "driver: %s: malformed case after %ld cases\n", argv[1], cases);
            return 2;
        }
        fprintf(out, "%08X %02X\n", x, f32_to_e4m3fn((uint32_t)x, saturate));
        cases++;
    }
    fclose(in);
    if (fclose(out) != 0) {
        perror("driver");
        return 2;
    }
    fprintf(stderr, "driver: %ld cases written to %s\n", cases, argv[2]);
    return 0;
}
