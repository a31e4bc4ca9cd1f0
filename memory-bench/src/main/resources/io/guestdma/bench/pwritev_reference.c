/*
 * The C reference of bin/bench: the IDE benchmark's transfers done with nothing but preadv and
 * pwritev, so the report can show what the kernel alone costs on the machine that ran the suite.
 * No device model, no JVM, no copy: the floor a zero-copy path can approach, not pass.
 *
 * Shapes as in IdeDmaBenchmark: 4 KiB in 1 piece, 64 KiB in 16, 1 MiB in 64. The pieces sit on
 * even piece-sized slots, shuffled, of a 48 MiB anonymous buffer advised for huge pages (guest RAM
 * above 16 MiB in IdeWorkload); the image is 64 MiB, fully written so it is in the page cache, and
 * transfers rotate over 16 transfer-sized slots of it from offset 0, as IdeWorkload's commands do.
 *
 * Usage:  pwritev_reference IMAGE_DIRECTORY SECONDS_PER_CASE
 * Output: one line per case, "write.4k=<ops/s>" ... "read.1m=<ops/s>" (a Java properties file).
 * Exit status 1 with a message on standard error if a call fails.
 *
 * bin/bench compiles this at benchmark time with the machine's C compiler (cc -O2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IMAGE_BYTES (64L << 20)
#define WINDOW_BYTES (48L << 20)
#define IMAGE_SLOTS 16

struct shape {
    const char *label;
    long bytes;
    int pieces;
};

static const struct shape SHAPES[] = {{"4k", 4096, 1}, {"64k", 65536, 16}, {"1m", 1L << 20, 64}};

static void die(const char *what) {
    fprintf(stderr, "pwritev_reference: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Moves the whole transfer, finishing a short one the way the Java backends do. */
static void transfer(int fd, int write, struct iovec *iov, int count, off_t offset) {
    struct iovec local[64];
    memcpy(local, iov, count * sizeof *iov);
    struct iovec *v = local;
    while (count > 0) {
        ssize_t n = write ? pwritev(fd, v, count, offset) : preadv(fd, v, count, offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die(write ? "pwritev" : "preadv");
        }
        if (n == 0) {
            errno = EIO;
            die("no progress");
        }
        offset += n;
        while (count > 0 && (size_t) n >= v->iov_len) {
            n -= v->iov_len;
            v++;
            count--;
        }
        if (count > 0) {
            v->iov_base = (char *) v->iov_base + n;
            v->iov_len -= n;
        }
    }
}

/* Runs one case for about `seconds` after a warm-up of a quarter of that; returns ops/s. */
static double run(int fd, int write, const struct shape *s, char *window, double seconds) {
    long piece = s->bytes / s->pieces;
    long slots = WINDOW_BYTES / piece / 2;
    long *even = malloc(slots * sizeof *even);
    if (even == NULL) {
        die("malloc");
    }
    for (long i = 0; i < slots; i++) {
        even[i] = 2 * i;
    }
    uint64_t seed = 0x6d61702d;
    for (long i = slots - 1; i > 0; i--) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        long j = (long) ((seed >> 33) % (uint64_t) (i + 1));
        long t = even[i];
        even[i] = even[j];
        even[j] = t;
    }
    struct iovec iov[64];
    for (int i = 0; i < s->pieces; i++) {
        iov[i].iov_base = window + even[i] * piece;
        iov[i].iov_len = piece;
    }
    free(even);
    int slot = 0;
    long ops = 0;
    double start = now(), measured = 0, end = start + seconds / 4;
    for (int measuring = 0; measuring < 2; measuring++) {
        for (;;) {
            /* Check the clock every few operations only: a 4 KiB transfer takes about a microsecond. */
            for (int k = 0; k < 16; k++) {
                transfer(fd, write, iov, s->pieces, (off_t) slot * s->bytes);
                slot = slot + 1 == IMAGE_SLOTS ? 0 : slot + 1;
                ops += measuring;
            }
            double t = now();
            if (t >= end) {
                if (measuring) {
                    return ops / (t - measured);
                }
                measured = t;
                end = t + seconds;
                break;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || atof(argv[2]) <= 0) {
        fprintf(stderr, "usage: pwritev_reference IMAGE_DIRECTORY SECONDS_PER_CASE\n");
        return 2;
    }
    double seconds = atof(argv[2]);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/pwritev-reference-XXXXXX", argv[1]) >= (int) sizeof path) {
        errno = ENAMETOOLONG;
        die(argv[1]);
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        die(path);
    }
    unlink(path); /* gone when the program ends, whatever happens */

    char *window = mmap(NULL, WINDOW_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (window == MAP_FAILED) {
        die("mmap");
    }
    madvise(window, WINDOW_BYTES, MADV_HUGEPAGE); /* as GuestMemory.ofRam does; a hint, may fail */
    for (long i = 0; i < WINDOW_BYTES; i++) {
        window[i] = (char) (i * 13 + 5);
    }
    for (long at = 0; at < IMAGE_BYTES; at += 1L << 20) {
        struct iovec fill = {window, 1L << 20};
        transfer(fd, 1, &fill, 1, at);
    }

    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        printf("write.%s=%.1f\n", SHAPES[i].label, run(fd, 1, &SHAPES[i], window, seconds));
        printf("read.%s=%.1f\n", SHAPES[i].label, run(fd, 0, &SHAPES[i], window, seconds));
        fflush(stdout);
    }
    close(fd);
    return 0;
}
