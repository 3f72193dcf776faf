/* parity_util.h — argument handling shared by the extract parity tests (header
 * only: every tests/<module>/test_*.c is its own executable). Usage:
 *   test_xxx [MODEL_DIR [REF_DIR [TOLERANCES_JSON]]]
 * Defaults point into ../shared/fixtures (tests run from the repository root); if
 * that whole folder is absent and no argument was given, the test exits 77 (skip). */
#ifndef DHF_TESTS_EXTRACT_PARITY_UTIL_H
#define DHF_TESTS_EXTRACT_PARITY_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DHF_FIXTURES_ROOT "../shared/fixtures"

static char g_model_dir[4096], g_ref_dir[4096], g_tol_path[4096];

static inline int parity_path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Returns 77 when the run must be skipped, 0 otherwise. */
static inline int parity_parse_args(int argc, char **argv, const char *def_model,
                             const char *def_ref, const char *def_tol)
{
    snprintf(g_model_dir, sizeof g_model_dir, "%s", argc > 1 ? argv[1] : def_model);
    snprintf(g_ref_dir, sizeof g_ref_dir, "%s", argc > 2 ? argv[2] : def_ref);
    snprintf(g_tol_path, sizeof g_tol_path, "%s", argc > 3 ? argv[3] : def_tol);
    if (argc <= 1 && !parity_path_exists(DHF_FIXTURES_ROOT)) {
        fprintf(stderr, "%s: %s is absent: skipping\n", argv[0], DHF_FIXTURES_ROOT);
        return 77;
    }
    return 0;
}

/* dir "/" name into a static rotating buffer (enough for a few live paths). */
static inline const char *parity_path(const char *dir, const char *name)
{
    static char bufs[8][4200];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

#endif
