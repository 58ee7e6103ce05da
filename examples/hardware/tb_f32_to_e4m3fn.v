// Testbench: reads fp8emu conversion vectors (format v2) with $readmemh and writes a results file
// that `fp8emu check` reads (one "input code" line per case).
//
//   iverilog -o tb tb_f32_to_e4m3fn.v f32_to_e4m3fn.v
//   vvp tb +vectors=v.txt +results=r.txt +cases=N [+saturate]
//
// Each case of the vectors file is three words, "input expected flags": $readmemh skips the `//`
// comments and reads the words one after another into a 32-bit word memory, so case i is
// mem[3i], mem[3i+1], mem[3i+2].  N is the number of cases (lines that are not comments).
`timescale 1ns / 1ps
module tb;
    parameter MAX_CASES = 1 << 16;
    reg  [31:0]    mem [0:3 * MAX_CASES - 1];
    reg  [8*512:1] vectors, results;
    reg            saturate;
    reg  [31:0]    x;
    wire [7:0]     y;
    integer        fd, i, n;

    f32_to_e4m3fn dut (.x(x), .saturate(saturate), .y(y));

    initial begin
        if (!$value$plusargs("vectors=%s", vectors) || !$value$plusargs("results=%s", results)
            || !$value$plusargs("cases=%d", n)) begin
            $display("usage: vvp tb +vectors=FILE +results=FILE +cases=N [+saturate]");
            $finish;
        end
        if (n < 1 || n > MAX_CASES) begin
            $display("tb: +cases=%0d is outside 1..%0d (recompile with -P tb.MAX_CASES=...)", n, MAX_CASES);
            $finish;
        end
        saturate = $test$plusargs("saturate");
        $readmemh(vectors, mem, 0, 3 * n - 1);
        fd = $fopen(results, "w");
        $fdisplay(fd, "// fp8emu results v2: f32_to_e4m3fn.v under Icarus Verilog");
        for (i = 0; i < n; i = i + 1) begin
            x = mem[3 * i];
            #1 $fdisplay(fd, "%h %h", x, y);
        end
        $fclose(fd);
        $display("tb: %0d cases written to %0s", n, results);
        $finish;
    end
endmodule
