/* The raw TCP floor: two processes and one loopback TCP socket with TCP_NODELAY, no MPI, no
 * framing (RAWTCP_UNIX=1: one Unix-domain stream socket pair instead, the floor of mpr's path
 * between ranks of one host). `latency`: ping-pong, spinning (see `spin`). `bw`: windows of writes of SIZE bytes, then
 * a 4-byte acknowledgement, as mpr-bench bw and osu bw measure. Same iteration counts and output
 * format as they have.
 *
 *   rawtcp latency|bw MIN MAX
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LARGE 8192
#define WINDOW_BYTES (256u << 20)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int spin = 1;

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, spin ? MSG_DONTWAIT : 0);
        if (k < 0) { if (errno == EAGAIN || errno == EINTR) continue; perror("send"); exit(1); }
        p += k; n -= (size_t)k;
    }
}

/* With `spin` (the default), sends and receives never sleep in the kernel: they retry
 * non-blocking calls, the fastest a socket can go on these machines, where waking from a sleep
 * costs ~20 us. RAWTCP_BLOCKING=1 uses plain blocking calls instead. */
static void recv_all(int fd, char *p, size_t n) {
    int flags = spin ? MSG_DONTWAIT : 0;
    while (n > 0) {
        ssize_t k = recv(fd, p, n, flags);
        if (k < 0) { if (errno == EAGAIN || errno == EINTR) continue; perror("recv"); exit(1); }
        if (k == 0) { fprintf(stderr, "peer closed\n"); exit(1); }
        p += k; n -= (size_t)k;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: rawtcp latency|bw MIN MAX\n"); return 2; }
    int lat = strcmp(argv[1], "latency") == 0;
    spin = getenv("RAWTCP_BLOCKING") == NULL;
    size_t min = strtoull(argv[2], NULL, 10), max = strtoull(argv[3], NULL, 10);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&a, &alen)) { perror("listen"); return 1; }
    int unix_pair[2], local = getenv("RAWTCP_UNIX") != NULL;
    if (local && socketpair(AF_UNIX, SOCK_STREAM, 0, unix_pair)) { perror("socketpair"); return 1; }
    pid_t child = fork();
    int fd, rank;
    if (local) {
        rank = child == 0;
        fd = unix_pair[rank];
        close(unix_pair[1 - rank]);
    } else if (child == 0) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        rank = 1;
    } else {
        fd = accept(lfd, NULL, NULL);
        rank = 0;
    }
    int one = 1;
    if (!local) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rank == 0) printf("# raw %s %s, 2 processes\n", local ? "unix" : "tcp", argv[1]);
    size_t first = min;
    if (min > 0) { first = 1; while (first < min) first <<= 1; }
    for (size_t size = first; size <= max; size = size ? size * 2 : 1) {
        int iters = lat ? (size > LARGE ? 1000 : 10000) : (size > LARGE ? 20 : 100);
        int warmup = lat ? (size > LARGE ? 10 : 100) : (size > LARGE ? 2 : 10);
        size_t w = WINDOW_BYTES / (size ? size : 1);
        int window = w < 1 ? 1 : (w > 64 ? 64 : (int)w);
        char *buf = malloc(size ? size * (size_t)window : 1);
        memset(buf, 'a', size * (size_t)window);
        char ack[4] = {0};
        double t0 = 0;
        for (int i = 0; i < warmup + iters; i++) {
            if (i == warmup) t0 = now();
            if (lat) {
                if (rank == 0) { send_all(fd, buf, size); recv_all(fd, buf, size); }
                else { recv_all(fd, buf, size); send_all(fd, buf, size); }
            } else {
                for (int j = 0; j < window; j++) {
                    if (rank == 0) send_all(fd, buf, size);
                    else recv_all(fd, buf + (size_t)j * size, size);
                }
                if (rank == 0) recv_all(fd, ack, 4); else send_all(fd, ack, 4);
            }
        }
        double dt = now() - t0;
        if (rank == 0) {
            if (lat) printf("%-12zu %14.2f\n", size, dt * 1e6 / (2.0 * iters));
            else printf("%-12zu %18.2f\n", size, (double)size * window * iters / dt / 1e6);
            fflush(stdout);
        }
        free(buf);
    }
    close(fd);
    if (child > 0) waitpid(child, NULL, 0);
    return 0;
}
