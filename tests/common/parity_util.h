/* parity_util.h — argument handling shared by the extract parity tests (header
 * only: every tests/<module>/test_*.c is its own executable). Usage:
 *   test_xxx [--device cpu|cuda[:N]] [--dtype float16|bfloat16]
 *            [MODEL_DIR [REF_DIR [TOLERANCES_JSON]]]
 * Defaults point into ../shared/fixtures (tests run from the repository root), or
 * into $DHF_FIXTURES when set (scripts/gpu-check.sh carries a copy); if that whole
 * folder is absent and no path was given, the test exits 77 (skip). --device places
 * the models (tests that support it); --dtype names the reduced-precision mode a
 * test checks beside float32 (default: bfloat16 on CPUs with AVX512-BF16, float16
 * on CUDA). */
#ifndef DHF_TESTS_EXTRACT_PARITY_UTIL_H
#define DHF_TESTS_EXTRACT_PARITY_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "extract/sd_model.h"

#define DHF_FIXTURES_ROOT "../shared/fixtures"

static char g_model_dir[4096], g_ref_dir[4096], g_tol_path[4096];
static char g_device[32] = "cpu", g_reduced_dtype[16] = "";

static inline int parity_path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* def with its "../shared/fixtures" prefix replaced by $DHF_FIXTURES when set */
static inline void parity_default(char *dst, size_t n, const char *def)
{
    const char *root = getenv("DHF_FIXTURES");
    size_t pre = strlen(DHF_FIXTURES_ROOT);
    if (root && *root && strncmp(def, DHF_FIXTURES_ROOT, pre) == 0)
        snprintf(dst, n, "%s%s", root, def + pre);
    else
        snprintf(dst, n, "%s", def);
}

/* Returns 77 when the run must be skipped, 2 on a bad option, 0 otherwise. */
static inline int parity_parse_args(int argc, char **argv, const char *def_model,
                                    const char *def_ref, const char *def_tol)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            snprintf(g_device, sizeof g_device, "%s", argv[++i]);
        } else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            snprintf(g_reduced_dtype, sizeof g_reduced_dtype, "%s", argv[++i]);
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
            return 2;
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        }
    }
    parity_default(g_model_dir, sizeof g_model_dir, def_model);
    parity_default(g_ref_dir, sizeof g_ref_dir, def_ref);
    parity_default(g_tol_path, sizeof g_tol_path, def_tol);
    if (pos[0])
        snprintf(g_model_dir, sizeof g_model_dir, "%s", pos[0]);
    if (pos[1])
        snprintf(g_ref_dir, sizeof g_ref_dir, "%s", pos[1]);
    if (pos[2])
        snprintf(g_tol_path, sizeof g_tol_path, "%s", pos[2]);
    char root[4096];
    parity_default(root, sizeof root, DHF_FIXTURES_ROOT);
    if (npos == 0 && !parity_path_exists(root)) {
        fprintf(stderr, "%s: %s is absent: skipping\n", argv[0], root);
        return 77;
    }
    return 0;
}

/* float32 on --device (the CPU by default); exits 2 on a device that cannot be used */
static inline const dhf_model_placement *parity_placement(void)
{
    static dhf_model_placement pl;
    if (dhf_sd_placement_parse(g_device, "float32", &pl) != 0) {
        fprintf(stderr, "--device %s: %s\n", g_device, dhf_err_msg());
        exit(2);
    }
    return &pl;
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
