/* Strided against contiguous ping-pong under MPI: what `mpr-bench latency --strided BLOCK`
   measures, for a peer. Rank 0 and 1 send SIZE bytes back and forth, either contiguous or as
   an MPI_Type_vector of SIZE/BLOCK blocks of BLOCK bytes every 2 BLOCK bytes (sent and
   received with that type on both sides, as mpr-bench does with a vector layout). Prints the
   mean one-way time in microseconds.

   usage: mpirun -np 2 strided SIZE BLOCK ITERS   (BLOCK 0: contiguous)
   prints: SIZE BLOCK US */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc < 4) {
        if (rank == 0) fprintf(stderr, "usage: strided SIZE BLOCK ITERS\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    long size = atol(argv[1]), block = atol(argv[2]), iters = atol(argv[3]);
    long extent = block ? 2 * size : size;
    char *buf = malloc(extent);
    memset(buf, 'a', extent);
    MPI_Datatype t = MPI_BYTE;
    int count = (int)size;
    if (block) {
        MPI_Type_vector((int)(size / block), (int)block, (int)(2 * block), MPI_BYTE, &t);
        MPI_Type_commit(&t);
        count = 1;
    }
    int peer = 1 - rank;
    for (int pass = 0; pass < 2; pass++) { /* warm-up, then timed */
        long n = pass ? iters : iters / 10 + 1;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (long i = 0; i < n; i++) {
            if (rank == 0) {
                MPI_Send(buf, count, t, peer, 0, MPI_COMM_WORLD);
                MPI_Recv(buf, count, t, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(buf, count, t, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, count, t, peer, 0, MPI_COMM_WORLD);
            }
        }
        double us = (MPI_Wtime() - t0) * 1e6 / n / 2;
        if (pass && rank == 0) printf("%ld %ld %.2f\n", size, block, us);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
