/* driver.c — the fuzz harnesses without libFuzzer, for the smoke run of make test: every
 * file of the given corpus folders is fed as it is, then deterministic mutations of
 * them (bit flips, byte changes, truncations, insertions) until the time budget ends.
 * A crash or a sanitizer report fails the test, as under libFuzzer.
 * Usage: fuzz_<name>_smoke SECONDS CORPUS_DIR [CORPUS_DIR ...] */
#include "fuzz_util.h"

#include <dirent.h>
#include <time.h>

typedef struct {
    uint8_t *data;
    size_t size;
} input;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Optional, as in libFuzzer: a harness that defines it sets itself up once. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SECONDS CORPUS_DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    double budget = atof(argv[1]);
    input *in = NULL;
    size_t n = 0, cap = 0;
    for (int a = 2; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
            FILE *f = fopen(path, "rb");
            if (!f)
                continue;
            fseek(f, 0, SEEK_END);
            long len = ftell(f);
            fseek(f, 0, SEEK_SET);
            if (len < 0 || len > (1 << 24)) {
                fclose(f);
                continue;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                in = realloc(in, cap * sizeof *in);
            }
            in[n].data = malloc((size_t)len + 1);
            in[n].size = fread(in[n].data, 1, (size_t)len, f);
            fclose(f);
            n++;
        }
        closedir(d);
    }
    long runs = 0;
    for (size_t i = 0; i < n; i++, runs++)
        LLVMFuzzerTestOneInput(in[i].data, in[i].size);
    double t0 = now();
    uint8_t *buf = malloc((1 << 24) + 64);
    while (n > 0 && now() - t0 < budget) {
        const input *s = &in[next() % n];
        size_t size = s->size;
        memcpy(buf, s->data, size);
        int k = 1 + (int)(next() % 4);
        for (int j = 0; j < k; j++) {
            switch (next() % 4) {
            case 0:
                if (size)
                    buf[next() % size] ^= (uint8_t)(1u << (next() % 8));
                break;
            case 1:
                if (size)
                    buf[next() % size] = (uint8_t)next();
                break;
            case 2:
                if (size)
                    size = next() % size;
                break;
            default: {
                size_t at = size ? next() % size : 0, len = 1 + next() % 8;
                if (size + len > (1u << 24))
                    break;
                memmove(buf + at + len, buf + at, size - at);
                for (size_t q = 0; q < len; q++)
                    buf[at + q] = (uint8_t)next();
                size += len;
            }
            }
        }
        LLVMFuzzerTestOneInput(buf, size);
        runs++;
    }
    printf("%s: %zu corpus inputs, %ld runs in %.1f s\n", argv[0], n, runs, now() - t0);
    free(buf);
    for (size_t i = 0; i < n; i++)
        free(in[i].data);
    free(in);
    return 0;
}
