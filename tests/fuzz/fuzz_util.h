/* fuzz_util.h — what the fuzz harnesses share (header only): a scratch folder per
 * process in /dev/shm (or /tmp) and writing an input there as a file, for the parsers
 * that read files; splitting one input into parts at NUL bytes. Every harness defines
 * LLVMFuzzerTestOneInput; libFuzzer (make fuzz) or driver.c (the smoke run of make
 * test) calls it. */
#ifndef DHF_TESTS_FUZZ_UTIL_H
#define DHF_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline const char *fuzz_dir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/dhf_fuzz_%ld", base, (long)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* dir/name holding the bytes; returns the path (static buffer per name slot) */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", fuzz_dir(), name);
    char *slash = strrchr(p, '/');
    if (slash && slash > p) {   /* make the sub-folder (one level below the scratch dir) */
        *slash = '\0';
        mkdir(p, 0700);
        *slash = '/';
    }
    FILE *f = fopen(p, "wb");
    if (f) {
        if (size)
            fwrite(data, 1, size, f);
        fclose(f);
    }
    return p;
}

/* part k (0-based) of the input split at NUL bytes: *len bytes at the returned pointer */
static inline const uint8_t *fuzz_part(const uint8_t *data, size_t size, int k, size_t *len)
{
    size_t start = 0;
    for (int i = 0; i < k; i++) {
        const uint8_t *z = memchr(data + start, 0, size - start);
        if (!z) {
            *len = 0;
            return data + size;
        }
        start = (size_t)(z - data) + 1;
    }
    const uint8_t *z = memchr(data + start, 0, size - start);
    *len = z ? (size_t)(z - (data + start)) : size - start;
    return data + start;
}

#endif
