/* The MPI peer of `mpr-bench barrier|allreduce|bcast`: time per call (max over ranks) of
 * MPI_Barrier, MPI_Allreduce (floats, sum) and MPI_Bcast (bytes from rank 0) at one size.
 *
 *   mpirun -np N coll barrier|allreduce|bcast BYTES [ITERS]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc < 3) {
        if (rank == 0) fprintf(stderr, "usage: coll barrier|allreduce|bcast BYTES [ITERS]\n");
        MPI_Finalize();
        return 2;
    }
    const char *op = argv[1];
    size_t bytes = strtoull(argv[2], NULL, 10);
    int iters = argc > 3 ? atoi(argv[3]) : (bytes > 8192 ? 100 : 1000);
    int warmup = bytes > 8192 ? 10 : 200;
    float *a = calloc(bytes / 4 + 1, 4), *b = calloc(bytes / 4 + 1, 4);
    int floats = (int)(bytes / 4);
    double t0 = 0;
    for (int i = 0; i < warmup + iters; i++) {
        if (i == warmup) t0 = MPI_Wtime();
        if (!strcmp(op, "barrier")) MPI_Barrier(MPI_COMM_WORLD);
        else if (!strcmp(op, "allreduce")) MPI_Allreduce(a, b, floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        else MPI_Bcast(a, (int)bytes, MPI_CHAR, 0, MPI_COMM_WORLD);
    }
    double mine = (MPI_Wtime() - t0) / iters * 1e6, worst;
    MPI_Reduce(&mine, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%-12zu %14.2f\n", bytes, worst);
    MPI_Finalize();
    return 0;
}
