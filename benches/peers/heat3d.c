/* heat3d against MPI: the same program as examples/src/bin/heat3d.rs (3-D Jacobi, 7-point
   stencil, face x = 0 held at 1), so the two runtimes can be timed on the same work.
   MPI_Dims_create + MPI_Cart_create (no wrap-around), faces as MPI_Type_create_subarray types
   in persistent requests (MPI_Send_init / MPI_Recv_init, MPI_Startall / MPI_Waitall), the
   cells that touch no ghost cell updated between Startall and Waitall, then the shell; the
   residual from MPI_Allreduce. Single-threaded (run heat3d with RAYON_NUM_THREADS=1 to compare).

   usage: mpirun -np P heat3d [NX NY NZ STEPS] [--per-rank]
   prints: heat3d NXxNYxNZ, S steps on P ranks (AxBxC): residual R, total heat H, T s, U us/step */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int n[3], s[3]; /* block cells, stored extents (n + 2) */
#define AT(x, y, z) (((size_t)(x) * s[1] + (y)) * s[2] + (z))

static double update(const double *o, double *w, int x, int y, int z) {
    size_t i = AT(x, y, z), sx = (size_t)s[1] * s[2], sy = s[2];
    double v = (o[i - sx] + o[i + sx] + o[i - sy] + o[i + sy] + o[i - 1] + o[i + 1]) / 6.0;
    double d = v - o[i];
    w[i] = v;
    return d * d;
}

static double sweep(const double *o, double *w, int x0, int x1, int y0, int y1, int z0, int z1) {
    double d2 = 0;
    for (int x = x0; x < x1; x++)
        for (int y = y0; y < y1; y++)
            for (int z = z0; z < z1; z++) d2 += update(o, w, x, y, z);
    return d2;
}

static double shell(const double *o, double *w) {
    double d2 = 0;
    for (int x = 1; x <= n[0]; x++)
        for (int y = 1; y <= n[1]; y++) {
            int edge = x == 1 || x == n[0] || y == 1 || y == n[1];
            if (edge) {
                for (int z = 1; z <= n[2]; z++) d2 += update(o, w, x, y, z);
            } else {
                d2 += update(o, w, x, y, 1);
                if (n[2] > 1) d2 += update(o, w, x, y, n[2]);
            }
        }
    return d2;
}

static MPI_Datatype face(int d, int at) {
    int sub[3] = {n[0], n[1], n[2]}, start[3] = {1, 1, 1};
    sub[d] = 1;
    start[d] = at;
    MPI_Datatype t;
    MPI_Type_create_subarray(3, s, sub, start, MPI_ORDER_C, MPI_DOUBLE, &t);
    MPI_Type_commit(&t);
    return t;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, per_rank = 0, num[4] = {96, 96, 96, 100}, k = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--per-rank")) per_rank = 1;
        else if (k < 4) num[k++] = atoi(argv[i]);
    }
    int dims[3] = {0, 0, 0}, periods[3] = {0, 0, 0}, c[3], N[3];
    MPI_Dims_create(size, 3, dims);
    for (int d = 0; d < 3; d++) N[d] = per_rank ? num[d] * dims[d] : num[d];
    int steps = num[3];
    MPI_Comm grid;
    MPI_Cart_create(MPI_COMM_WORLD, 3, dims, periods, 0, &grid);
    MPI_Cart_coords(grid, rank, 3, c);
    for (int d = 0; d < 3; d++) {
        int lo = (int)((long)N[d] * c[d] / dims[d]), hi = (int)((long)N[d] * (c[d] + 1) / dims[d]);
        n[d] = hi - lo;
        s[d] = n[d] + 2;
    }
    size_t len = (size_t)s[0] * s[1] * s[2], plane = (size_t)s[1] * s[2];
    double *g[2] = {calloc(len, sizeof(double)), calloc(len, sizeof(double))};
    if (c[0] == 0)
        for (size_t i = 0; i < plane; i++) g[0][i] = g[1][i] = 1.0;
    /* Persistent requests per grid: 6 sends, 6 receives (MPI_PROC_NULL at the box's faces). */
    MPI_Request req[2][12];
    for (int b = 0; b < 2; b++) {
        int q = 0;
        for (int d = 0; d < 3; d++) {
            int minus, plus;
            MPI_Cart_shift(grid, d, 1, &minus, &plus);
            MPI_Send_init(g[b], 1, face(d, 1), minus, 2 * d, grid, &req[b][q++]);
            MPI_Send_init(g[b], 1, face(d, n[d]), plus, 2 * d + 1, grid, &req[b][q++]);
            MPI_Recv_init(g[b], 1, face(d, 0), minus, 2 * d + 1, grid, &req[b][q++]);
            MPI_Recv_init(g[b], 1, face(d, n[d] + 1), plus, 2 * d, grid, &req[b][q++]);
        }
    }
    MPI_Barrier(grid);
    double t0 = MPI_Wtime(), residual = 0;
    for (int step = 0; step < steps; step++) {
        int o = step % 2;
        double *old = g[o], *nw = g[1 - o];
        MPI_Startall(12, req[o]);
        int hx = n[0] > 2 ? n[0] : 2, hy = n[1] > 2 ? n[1] : 2, hz = n[2] > 2 ? n[2] : 2;
        double d2 = sweep(old, nw, 2, hx, 2, hy, 2, hz);
        MPI_Waitall(12, req[o], MPI_STATUSES_IGNORE);
        d2 += shell(old, nw);
        double total;
        MPI_Allreduce(&d2, &total, 1, MPI_DOUBLE, MPI_SUM, grid);
        residual = sqrt(total);
    }
    double *last = g[steps % 2], sum = 0, heat;
    for (int x = 1; x <= n[0]; x++)
        for (int y = 1; y <= n[1]; y++)
            for (int z = 1; z <= n[2]; z++) sum += last[AT(x, y, z)];
    MPI_Allreduce(&sum, &heat, 1, MPI_DOUBLE, MPI_SUM, grid);
    double secs = MPI_Wtime() - t0;
    if (rank == 0)
        printf("heat3d %dx%dx%d, %d steps on %d ranks (%dx%dx%d): residual %.6e, total heat %.9f, %.3f s, %.1f us/step\n",
               N[0], N[1], N[2], steps, size, dims[0], dims[1], dims[2], residual, heat, secs,
               secs / steps * 1e6);
    MPI_Finalize();
    return 0;
}
