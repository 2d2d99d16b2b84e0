/* What scattered iovecs cost process_vm_readv, local side against remote side: a child process
 * holds 2 MiB, the parent reads 1 MiB of it in blocks of BLOCK bytes every 2 BLOCK, best and
 * mean of 50, warm caches:
 *   gcc -O2 -o /tmp/cma_iov benches/probes/cma_iov.c && /tmp/cma_iov BLOCK
 * mode 0: one run each side; mode 1: local side in blocks (IOV_MAX per call), remote one run;
 * mode 2: remote side in blocks, local one run; mode 3: both sides in blocks; modes 4 and 5:
 * as 0 and 3, writing into the child (process_vm_writev) (BENCHMARKS.md, "Issue 17: what a
 * laid-out single copy would cost"). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
#define SZ (1<<20)
int main(int argc,char**argv){
  long blk=argc==2?atol(argv[1]):0;
  if(blk<=0||blk>SZ||SZ%blk){fprintf(stderr,"usage: %s BLOCK (bytes, dividing 1 MiB)\n",argv[0]);return 2;}
  char*src=aligned_alloc(4096,2*SZ),*dst=aligned_alloc(4096,2*SZ);
  memset(src,1,2*SZ); memset(dst,2,2*SZ);
  pid_t p=fork();
  if(p<0){perror("fork");return 1;}
  if(!p){prctl(PR_SET_PDEATHSIG,SIGKILL);for(;;)pause();}
  int n=SZ/blk; struct iovec*l=malloc(n*sizeof*l),*r=malloc(n*sizeof*r);
  for(int i=0;i<n;i++){l[i].iov_base=dst+2*(size_t)i*blk;l[i].iov_len=blk;r[i].iov_base=src+2*(size_t)i*blk;r[i].iov_len=blk;}
  for(int mode=0;mode<6;mode++){
    double best=1e9,tot=0;
    for(int it=0;it<50;it++){
      double t=now(); ssize_t got=0;
      if(mode==0) got=process_vm_readv(p,&(struct iovec){dst,SZ},1,&(struct iovec){src,SZ},1,0);
      else if(mode==4) got=process_vm_writev(p,&(struct iovec){dst,SZ},1,&(struct iovec){src,SZ},1,0);
      else if(mode==3||mode==5) for(int i=0;i<n;i+=1024){
        int k=n-i<1024?n-i:1024;
        got+=mode==3?process_vm_readv(p,l+i,k,r+i,k,0):process_vm_writev(p,l+i,k,r+i,k,0);
      }
      else for(int i=0;i<n;i+=1024){
        int k=n-i<1024?n-i:1024;
        struct iovec run={mode==1?src+(size_t)i*blk:dst+(size_t)i*blk,(size_t)k*blk};
        got+=mode==1?process_vm_readv(p,l+i,k,&run,1,0):process_vm_readv(p,&run,1,r+i,k,0);
      }
      if(got!=SZ){perror("process_vm_readv/writev");kill(p,SIGKILL);return 1;}
      double d=now()-t; if(d<best)best=d; tot+=d;
    }
    printf("block %ld mode %d: best %.1f us, mean %.1f us\n",blk,mode,best,tot/50);
  }
  kill(p,SIGKILL); return 0;}
