/* What one process_vm_readv costs against memcpy of the same bytes, warm caches, one process
 * reading its own memory: gcc -O2 -o /tmp/cma_cost benches/probes/cma_cost.c && /tmp/cma_cost N
 * (BENCHMARKS.md, "What is left of issue 15's 64 KiB row"). */
#define _GNU_SOURCE
#include <sys/uio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
int main(int argc,char**argv){
  if(argc!=2||atol(argv[1])<=0){fprintf(stderr,"usage: %s N (bytes, > 0)\n",argv[0]);return 2;}
  size_t n=atol(argv[1]); int iters=20000;
  char*src=aligned_alloc(4096,n), *dst=aligned_alloc(4096,n);
  memset(src,1,n); memset(dst,2,n);
  pid_t me=getpid();
  for(int k=0;k<3;k++){
  double t0=now();
  for(int i=0;i<iters;i++){
    struct iovec l={dst,n}, r={src,n};
    if(process_vm_readv(me,&l,1,&r,1,0)!=(ssize_t)n){perror("x");return 1;}
  }
  double t1=now();
  for(int i=0;i<iters;i++){ memcpy(dst,src,n); __asm__ volatile("":::"memory"); }
  double t2=now();
  printf("%zu: cma %.3f us, memcpy %.3f us\n",n,(t1-t0)/iters,(t2-t1)/iters);
  }
}
