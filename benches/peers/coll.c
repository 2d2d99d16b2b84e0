/* The MPI peer of `mpr-bench barrier|bcast|reduce|allreduce|gather|scatter|allgather|alltoall`:
 * time per call (max over ranks) at one size, measured as mpr-bench measures: reductions on
 * floats (sum), the others on bytes, BYTES per rank pair for gathers and all-to-all, root 0.
 *
 *   mpirun -np N coll OP BYTES [ITERS]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (argc < 3) {
        if (rank == 0) fprintf(stderr, "usage: coll barrier|allreduce|bcast BYTES [ITERS]\n");
        MPI_Finalize();
        return 2;
    }
    const char *op = argv[1];
    size_t bytes = strtoull(argv[2], NULL, 10);
    int iters = argc > 3 ? atoi(argv[3]) : (bytes > 8192 ? 100 : 1000);
    int warmup = bytes > 8192 ? 10 : 200;
    float *a = calloc(bytes * n / 4 + 1, 4), *b = calloc(bytes * n / 4 + 1, 4);
    int c = (int)bytes;
    int floats = (int)(bytes / 4);
    double t0 = 0;
    for (int i = 0; i < warmup + iters; i++) {
        if (i == warmup) t0 = MPI_Wtime();
        if (!strcmp(op, "barrier")) MPI_Barrier(MPI_COMM_WORLD);
        else if (!strcmp(op, "allreduce")) MPI_Allreduce(a, b, floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        else if (!strcmp(op, "reduce")) MPI_Reduce(a, b, floats, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
        else if (!strcmp(op, "gather")) MPI_Gather(a, c, MPI_CHAR, b, c, MPI_CHAR, 0, MPI_COMM_WORLD);
        else if (!strcmp(op, "scatter")) MPI_Scatter(a, c, MPI_CHAR, b, c, MPI_CHAR, 0, MPI_COMM_WORLD);
        else if (!strcmp(op, "allgather")) MPI_Allgather(a, c, MPI_CHAR, b, c, MPI_CHAR, MPI_COMM_WORLD);
        else if (!strcmp(op, "alltoall")) MPI_Alltoall(a, c, MPI_CHAR, b, c, MPI_CHAR, MPI_COMM_WORLD);
        else if (!strcmp(op, "bcast")) MPI_Bcast(a, c, MPI_CHAR, 0, MPI_COMM_WORLD);
        else { if (rank == 0) fprintf(stderr, "coll: unknown operation %s\n", op); MPI_Abort(MPI_COMM_WORLD, 2); }
    }
    double mine = (MPI_Wtime() - t0) / iters * 1e6, worst;
    MPI_Reduce(&mine, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%-12zu %14.2f\n", bytes, worst);
    MPI_Finalize();
    return 0;
}
