/* parity.h — numerical parity against reference safetensors files with the
 * fixtures' tolerance rule: a float tensor passes iff
 * max|cand - ref| <= atol + rtol * max|ref|, with (rtol, atol) from tolerances.json
 * (patterns[file][regex] first match, else files[file], else default). Results are
 * grouped by the matching pattern so a report gives the worst err/tol per group. */
#ifndef DHF_TESTS_COMMON_PARITY_H
#define DHF_TESTS_COMMON_PARITY_H

#include <stdio.h>

#include "core/safetensors.h"
#include "shim/torch_shim.h"

typedef struct dhf_tolerances dhf_tolerances;

int dhf_tolerances_load(const char *path, dhf_tolerances **out);
void dhf_tolerances_free(dhf_tolerances *t);
/* file: the reference file's stem ("unet_single"). *group: the matching regex, or
 * "<file>" / "<default>" (BORROWED from t). */
void dhf_tolerances_lookup(const dhf_tolerances *t, const char *file, const char *tensor,
                           double *rtol, double *atol, const char **group);

#define DHF_PARITY_MAX_GROUPS 64

typedef struct {
    char group[128];
    int n, n_fail;
    double worst_ratio;          /* max over tensors of max|d| / (atol + rtol max|ref|) */
    char worst_tensor[128];
    double worst_abs;
} dhf_parity_group;

typedef struct {
    const dhf_tolerances *tol;   /* BORROWED */
    char file[128];
    dhf_parity_group groups[DHF_PARITY_MAX_GROUPS];
    int n_groups;
    int n_checked, n_fail;
    /* every tolerance multiplied by this (1 by default; a reduced-precision mode's
     * bound); worst err/tol stays in units of the file's tolerance */
    double tol_factor;
} dhf_parity_report;

void dhf_parity_init(dhf_parity_report *r, const dhf_tolerances *tol, const char *file_stem);
/* Compares cand (any dtype/device) with tensor `ref_name` of ref (same shape required)
 * under the tolerance of `tol_name` (usually ref_name). Returns 0 pass, 1 fail
 * (recorded), -1 error (missing tensor, shape mismatch: recorded as a failure too,
 * message set). */
int dhf_parity_check(dhf_parity_report *r, dhf_tensor cand, const dhf_st_file *ref,
                     const char *ref_name, const char *tol_name);
/* One line per group: "group  n=.. fail=..  worst err/tol=.. (tensor)". */
void dhf_parity_print(const dhf_parity_report *r, FILE *f);

#endif
