/* Throughput of the 64-bit multiplies the SplitMix64 hash could use, on this CPU (issue 19):
 * vpmullq (AVX512DQ), vpmuludq (32x32 -> 64), vpmadd52luq (IFMA), and a shift for scale.
 *   gcc -O2 -march=native tools/probes/mul_throughput.c -o /tmp/mul_throughput && /tmp/mul_throughput
 * Eight independent chains per loop; cycles per instruction against a calibrated add loop. */
#include <immintrin.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
#define N 100000000L
int main(){
  __m512i c = _mm512_set1_epi64(0xBF58476D1CE4E5B9ULL);
  __m512i a0=_mm512_set1_epi64(1),a1=_mm512_set1_epi64(2),a2=_mm512_set1_epi64(3),a3=_mm512_set1_epi64(4),
          a4=_mm512_set1_epi64(5),a5=_mm512_set1_epi64(6),a6=_mm512_set1_epi64(7),a7=_mm512_set1_epi64(8);
  double t=now();
  for(long i=0;i<N;i++){ // 8 independent chains: throughput
    a0=_mm512_mullo_epi64(a0,c);a1=_mm512_mullo_epi64(a1,c);a2=_mm512_mullo_epi64(a2,c);a3=_mm512_mullo_epi64(a3,c);
    a4=_mm512_mullo_epi64(a4,c);a5=_mm512_mullo_epi64(a5,c);a6=_mm512_mullo_epi64(a6,c);a7=_mm512_mullo_epi64(a7,c);
    __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7));
  }
  double d1=now()-t;
  t=now();
  for(long i=0;i<N;i++){
    a0=_mm512_mul_epu32(a0,c);a1=_mm512_mul_epu32(a1,c);a2=_mm512_mul_epu32(a2,c);a3=_mm512_mul_epu32(a3,c);
    a4=_mm512_mul_epu32(a4,c);a5=_mm512_mul_epu32(a5,c);a6=_mm512_mul_epu32(a6,c);a7=_mm512_mul_epu32(a7,c);
    __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7));
  }
  double d2=now()-t;
  t=now();
  for(long i=0;i<N;i++){
    a0=_mm512_madd52lo_epu64(a0,a0,c);a1=_mm512_madd52lo_epu64(a1,a1,c);a2=_mm512_madd52lo_epu64(a2,a2,c);a3=_mm512_madd52lo_epu64(a3,a3,c);
    a4=_mm512_madd52lo_epu64(a4,a4,c);a5=_mm512_madd52lo_epu64(a5,a5,c);a6=_mm512_madd52lo_epu64(a6,a6,c);a7=_mm512_madd52lo_epu64(a7,a7,c);
    __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7));
  }
  double d3=now()-t;
  t=now();
  for(long i=0;i<N;i++){
    a0=_mm512_srli_epi64(a0,3);a1=_mm512_srli_epi64(a1,3);a2=_mm512_srli_epi64(a2,3);a3=_mm512_srli_epi64(a3,3);
    a4=_mm512_srli_epi64(a4,3);a5=_mm512_srli_epi64(a5,3);a6=_mm512_srli_epi64(a6,3);a7=_mm512_srli_epi64(a7,3);
    __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7));
  }
  double d4=now()-t;
  // mixed: vpmuludq + shift
  t=now();
  for(long i=0;i<N;i++){
    a0=_mm512_mul_epu32(a0,c);a1=_mm512_mul_epu32(a1,c);a2=_mm512_mul_epu32(a2,c);a3=_mm512_mul_epu32(a3,c);
    a4=_mm512_srli_epi64(a4,3);a5=_mm512_srli_epi64(a5,3);a6=_mm512_srli_epi64(a6,3);a7=_mm512_srli_epi64(a7,3);
    __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7));
  }
  double d5=now()-t;
  // ymm vpmullq
  __m256i cy=_mm256_set1_epi64x(0xBF58476D1CE4E5B9ULL), b0=_mm256_set1_epi64x(1),b1=b0,b2=b0,b3=b0,b4=b0,b5=b0,b6=b0,b7=b0;
  t=now();
  for(long i=0;i<N;i++){
    b0=_mm256_mullo_epi64(b0,cy);b1=_mm256_mullo_epi64(b1,cy);b2=_mm256_mullo_epi64(b2,cy);b3=_mm256_mullo_epi64(b3,cy);
    b4=_mm256_mullo_epi64(b4,cy);b5=_mm256_mullo_epi64(b5,cy);b6=_mm256_mullo_epi64(b6,cy);b7=_mm256_mullo_epi64(b7,cy);
    __asm__ volatile("" : "+v"(b0),"+v"(b1),"+v"(b2),"+v"(b3),"+v"(b4),"+v"(b5),"+v"(b6),"+v"(b7));
  }
  double d6=now()-t;
  t=now();
  for(long i=0;i<N;i++){
    b0=_mm256_mul_epu32(b0,cy);b1=_mm256_mul_epu32(b1,cy);b2=_mm256_mul_epu32(b2,cy);b3=_mm256_mul_epu32(b3,cy);
    b4=_mm256_mul_epu32(b4,cy);b5=_mm256_mul_epu32(b5,cy);b6=_mm256_mul_epu32(b6,cy);b7=_mm256_mul_epu32(b7,cy);
    __asm__ volatile("" : "+v"(b0),"+v"(b1),"+v"(b2),"+v"(b3),"+v"(b4),"+v"(b5),"+v"(b6),"+v"(b7));
  }
  double d7=now()-t;
  // reference: scalar add loop to calibrate clock: 1 dependent add per iter ~ 1 cycle
  volatile long s=0; long x=0; t=now(); for(long i=0;i<N;i++){ x+=i; __asm__ volatile(""::"r"(x)); } double d0=now()-t; s=x;
  double cyc=d0/N; // ns per cycle approx
  printf("cycle ~%.3f ns (%.2f GHz)\n", cyc*1e9, 1/cyc/1e9);
  printf("per instruction (cycles): vpmullq zmm %.2f  vpmuludq zmm %.2f  vpmadd52luq zmm %.2f  vpsrlq zmm %.2f  mix(4mul+4shift)/8 %.2f  vpmullq ymm %.2f  vpmuludq ymm %.2f\n",
   d1/N/8/cyc, d2/N/8/cyc, d3/N/8/cyc, d4/N/8/cyc, d5/N/8/cyc, d6/N/8/cyc, d7/N/8/cyc);
  return (int)_mm512_reduce_add_epi64(_mm512_add_epi64(a0,a7)) + (int)s;
}
