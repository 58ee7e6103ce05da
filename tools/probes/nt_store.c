/* Streaming (non-temporal) stores against plain stores for a float32 copy, one thread (issue 19).
 *   gcc -O2 -mavx512f tools/probes/nt_store.c -o /tmp/nt_store && for n in 4194304 16777216 67108864; do taskset -c 1 /tmp/nt_store $n; done
 * quantize RNE runs at np.copyto's rate from 16 M float32 elements up, so the 25x-ml_dtypes target on one
 * thread is bounded by the copy; a store that skips the read-for-ownership of the output would lift that
 * bound.  Per size: plain 512-bit stores, vmovntps, and glibc memcpy; medians of 15. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  size_t n = (size_t)atol(argv[1]);
  float *a = aligned_alloc(64,n*4), *b=aligned_alloc(64,n*4);
  for(size_t i=0;i<n;i++){a[i]=i*0.37f;b[i]=0;}
  for(int mode=0;mode<3;mode++){
    double best=1e9; double times[15];
    for(int r=0;r<15;r++){
      double t=now();
      if(mode==0){ for(size_t i=0;i<n;i+=16){__m512 v=_mm512_load_ps(a+i); _mm512_store_ps(b+i,v);} }
      else if(mode==1){ for(size_t i=0;i<n;i+=16){__m512 v=_mm512_load_ps(a+i); _mm512_stream_ps(b+i,v);} _mm_sfence(); }
      else { memcpy(b,a,n*4); }
      times[r]=now()-t;
    }
    // median
    for(int i=0;i<15;i++)for(int j=i+1;j<15;j++)if(times[j]<times[i]){double x=times[i];times[i]=times[j];times[j]=x;}
    printf("n=%zu mode=%s median %.3f ms  %.2f G el/s\n",n,mode==0?"store":mode==1?"stream":"memcpy",times[7]*1e3,n/times[7]/1e9);
  }
  return b[n/2]>0?0:1;
}
