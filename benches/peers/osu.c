/* The MPI peer of `mpr-bench latency|bw|bibw`: the same measurements (OSU-style ping-pong,
 * windowed streaming, bidirectional streaming), the same iteration counts and window sizes, and
 * the same output format, so `benches/compare` can run both against one machine in one run.
 *
 *   mpirun -np 2 osu latency|bw|bibw MIN MAX
 *   mpirun -np 2K osu multi_lat MIN MAX      (K pairs: rank r with r + K; mean over the pairs)
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LARGE 8192
#define WINDOW_BYTES (256u << 20)

static int window_for(size_t size) {
    size_t w = WINDOW_BYTES / (size ? size : 1);
    return w < 1 ? 1 : (w > 64 ? 64 : (int)w);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    int multi = argc == 4 && strcmp(argv[1], "multi_lat") == 0;
    if (argc != 4 || (multi ? nranks % 2 != 0 : nranks != 2)) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -np 2 osu latency|bw|bibw|multi_lat MIN MAX\n");
        MPI_Finalize();
        return 2;
    }
    const char *bench = argv[1];
    size_t min = strtoull(argv[2], NULL, 10), max = strtoull(argv[3], NULL, 10);
    int lat = multi || strcmp(bench, "latency") == 0, bibw = strcmp(bench, "bibw") == 0;
    int half = nranks / 2;
    int peer = rank < half ? rank + half : rank - half;
    int pinger = rank < half;
    if (rank == 0) printf("# osu-peer %s, %d ranks\n", bench, nranks);
    size_t first = min;
    if (min > 0) { first = 1; while (first < min) first <<= 1; }
    for (size_t size = first; size <= max; size = size ? size * 2 : 1) {
        int iters = lat ? (size > LARGE ? 1000 : 10000) : (size > LARGE ? 20 : 100);
        int warmup = lat ? (size > LARGE ? 10 : 100) : (size > LARGE ? 2 : 10);
        int window = window_for(size);
        char *sbuf = malloc(size ? size : 1);
        char *rbuf = malloc((size ? size : 1) * (size_t)window);
        memset(sbuf, 'a', size);
        memset(rbuf, 0, size * (size_t)window);
        MPI_Request *reqs = malloc(sizeof(MPI_Request) * 2 * (size_t)window);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = 0;
        for (int i = 0; i < warmup + iters; i++) {
            if (i == warmup) t0 = MPI_Wtime();
            if (lat) {
                if (pinger) {
                    MPI_Send(sbuf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
                    MPI_Recv(rbuf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else {
                    MPI_Recv(rbuf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(sbuf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
                }
            } else {
                int n = 0;
                if (bibw || rank == 1)
                    for (int j = 0; j < window; j++)
                        MPI_Irecv(rbuf + (size_t)j * size, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD, &reqs[n++]);
                if (bibw || rank == 0)
                    for (int j = 0; j < window; j++)
                        MPI_Isend(sbuf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD, &reqs[n++]);
                MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
                if (!bibw) {
                    int ack = 0;
                    if (rank == 0) MPI_Recv(&ack, 4, MPI_CHAR, peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    else MPI_Send(&ack, 4, MPI_CHAR, peer, 2, MPI_COMM_WORLD);
                }
            }
        }
        double dt = MPI_Wtime() - t0;
        double mine = pinger ? dt * 1e6 / (2.0 * iters) : 0.0, sum = 0.0;
        MPI_Reduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            if (lat) printf("%-12zu %14.2f\n", size, sum / half);
            else printf("%-12zu %18.2f\n", size, (double)size * window * iters * (bibw ? 2 : 1) / dt / 1e6);
            fflush(stdout);
        }
        free(sbuf); free(rbuf); free(reqs);
    }
    MPI_Finalize();
    return 0;
}
