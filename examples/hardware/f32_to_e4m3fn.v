// float32 -> E4M3FN (OCP FP8: 1 sign, 4 exponent, 3 mantissa bits, bias 7, no Inf, NaN = S.1111.111),
// round to nearest, ties to even; combinational, synthesizable style (no real arithmetic).
//
//   float32  S EEEEEEEE MMM|R TTTTTTTTTTTTTTTTTTT      value = 1.M * 2^(E-127)
//                       kept  \____ rem ________/       (R = the round bit, T = the sticky bits)
//
// A result of magnitude m (7 bits: exponent field and mantissa field side by side) is found as
// an integer: for a normal result ((E-127+6) << 3) plus the 4 kept significand bits, for a
// subnormal one the significand shifted further right.  Adding the round-up carry to that
// integer carries from the mantissa into the exponent field on its own (1.875 + ulp -> 2.0).
//
// Planted bugs for the harness (examples/hardware/run.sh compiles copies with them):
//   PLANT_TIES_AWAY: ties round away from zero in the binade [1, 2) only;
//   PLANT_FTZ:       results below the smallest normal (2^-6) are flushed to zero.
`timescale 1ns / 1ps
module f32_to_e4m3fn (
    input  wire [31:0] x,
    input  wire        saturate,  // 1: overflow gives +-448 (0x7E/0xFE); 0: overflow gives NaN (0x7F)
    output reg  [7:0]  y
);
    wire        s = x[31];
    wire [7:0]  e = x[30:23];
    wire [22:0] m = x[22:0];
    wire [23:0] sig = {e != 8'd0, m};  // the significand with its hidden bit

    integer     exp_unb;  // unbiased exponent of x
    integer     shift;    // significand bits below the result's quantum
    reg [25:0]  k, rem, half;  // wide enough for half = 2^24 at shift 25
    reg         up;
    integer     mag;

    always @* begin
        exp_unb = e - 127;
        // quantum 2^(exp_unb-3) for normal results, 2^-9 below 2^-6; past 25 bits everything is < half
        if (exp_unb >= -6)          shift = 20;
        else if (14 - exp_unb > 25) shift = 25;
        else                        shift = 14 - exp_unb;
        k    = sig >> shift;
        rem  = sig & ((26'd1 << shift) - 26'd1);
        half = 26'd1 << (shift - 1);
        up   = (rem > half) || (rem == half && k[0]);
`ifdef PLANT_TIES_AWAY
        if (exp_unb == 0) up = (rem >= half);
`endif
        mag = (exp_unb >= -6 ? ((exp_unb + 6) << 3) : 0) + k + up;
`ifdef PLANT_FTZ
        if (exp_unb < -6) mag = 0;
`endif
        if (e == 8'hFF && m != 23'd0)
            y = 8'h7F;                                  // NaN -> NaN
        else if (e == 8'hFF || mag > 126)               // Inf, or past 448 after rounding
            y = saturate ? {s, 7'h7E} : 8'h7F;
        else
            y = {s, mag[6:0]};
    end
endmodule
