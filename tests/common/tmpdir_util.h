/* tmpdir_util.h — temporary folders for tests that build broken or modified copies
 * of models (never inside the repository or the fixtures): make, copy a file,
 * remove recursively. Header only. */
#ifndef DHF_TESTS_EXTRACT_TMPDIR_UTIL_H
#define DHF_TESTS_EXTRACT_TMPDIR_UTIL_H

#include "core/fsutil.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdtemp under /tmp; returns a malloc'd path or NULL. */
static inline char *tmp_make_dir(const char *tag)
{
    char *p = malloc(256);
    if (!p)
        return NULL;
    snprintf(p, 256, "/tmp/dhf_%s_XXXXXX", tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static inline int tmp_copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    return rc;
}

static inline int tmp_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* rm -r (does not follow symlinks). */
static inline void tmp_remove_tree(const char *path) { dhf_remove_tree(path); }

#endif
