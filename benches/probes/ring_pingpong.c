/* A floor for a 64 KiB message through shared memory, with no runtime: two processes, a ring
 * each way, a message of N bytes copied in chunks of CH bytes into a ring of CAP bytes, each
 * chunk published by a counter the reader polls; a ping-pong, one way printed.
 * gcc -O2 -o /tmp/ring_pingpong benches/probes/ring_pingpong.c && /tmp/ring_pingpong N CH CAP
 * (BENCHMARKS.md, "What is left of issue 15's 64 KiB row"). */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <signal.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
/* two rings (one each way) of CAP bytes; a message of n bytes goes in chunks of CH, each published by a per-direction counter */
int main(int argc,char**argv){
  if(argc!=4&&argc!=5){fprintf(stderr,"usage: %s N CH CAP [OFF]\n",argv[0]);return 2;}
  size_t n=atol(argv[1]), CH=atol(argv[2]), CAP=atol(argv[3]); int iters=20000;
  size_t OFF= argc==5? atol(argv[4]) : 0; /* where in the ring the first byte lies: its alignment */
  if(n==0||CH==0||CH>CAP||OFF>=CAP){fprintf(stderr,"N and CH must be > 0, CH <= CAP, OFF < CAP\n");return 2;}
  char *mem=mmap(0,2*CAP+8192,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  if(mem==MAP_FAILED){perror("mmap");return 1;}
  volatile atomic_ulong *pub=(void*)(mem+2*CAP);   /* pub[0], pub[8]: bytes published per direction */
  volatile atomic_ulong *con=(void*)(mem+2*CAP+4096); /* consumed */
  char*src=aligned_alloc(4096,n), *dst=aligned_alloc(4096,n);
  if(!src||!dst){perror("aligned_alloc");return 1;}
  memset(src,1,n); memset(dst,2,n);
  atomic_store(&con[0],OFF); atomic_store(&con[8],OFF); atomic_store(&pub[0],OFF); atomic_store(&pub[8],OFF);
  pid_t child=fork(); int me= child==0;
  if(me) prctl(PR_SET_PDEATHSIG,SIGKILL); /* never outlive the parent */
  unsigned long sent=OFF, got=OFF; /* per my tx direction / rx direction */
  double t0=0;
  for(int i=0;i<iters*2;i++){
    if(i==iters && !me) t0=now();
    int sender=i%2;
    if(sender==me){
      char*ring=mem+me*CAP; size_t off=0;
      while(off<n){ size_t k=n-off<CH?n-off:CH;
        while(sent+k-atomic_load(&con[me*8])>CAP) {}
        size_t at=sent%CAP; if(k>CAP-at) k=CAP-at; memcpy(ring+at,src+off,k); sent+=k; off+=k;
        atomic_store_explicit(&pub[me*8],sent,memory_order_release);
      }
    } else {
      int o=1-me; char*ring=mem+o*CAP; size_t off=0;
      while(off<n){ unsigned long p;
        while((p=atomic_load_explicit(&pub[o*8],memory_order_acquire))==got) {}
        size_t k=p-got; size_t at=got%CAP; if(k>CAP-at) k=CAP-at; memcpy(dst+off,ring+at,k); got+=k; off+=k;
        atomic_store_explicit(&con[o*8],got,memory_order_release);
      }
    }
  }
  if(!me){ printf("%zu ch %zu cap %zu: %.3f us one way\n",n,CH,CAP,(now()-t0)/iters); wait(0);} 
  return 0;
}
