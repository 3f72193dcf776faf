/* bootstrap.h — how much of a PCK is noise: percentile bootstrap intervals over pairs
 * (whole pairs resampled with replacement: the unit a benchmark samples) for the
 * pooled-per-keypoint PCK of one method, and a paired bootstrap for the difference of
 * two methods judged on the same pairs (each resample draws the same pairs for both).
 * Deterministic for a seed (splitmix64); quantiles interpolate linearly between order
 * statistics, as numpy's default. */
#ifndef DHF_EVAL_BOOTSTRAP_H
#define DHF_EVAL_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "eval/pck.h"

/* one pair's judged keypoints */
typedef struct {
    long n;          /* keypoints */
    long correct;    /* of them within the threshold */
} dhf_boot_pair;

typedef struct {
    double estimate;   /* on the pairs as they are */
    double lo, hi;     /* the central `level` interval of the resampled values */
    int resamples;
} dhf_boot_interval;

/* Per-pair counts at threshold kind (DHF_PCK_IMG / _BBOX) and alpha from judged
 * keypoints (kps[i].pair < n_pairs); out has n_pairs entries. */
void dhf_boot_pairs_from_kps(const dhf_pck_kp *kps, size_t n_kps, int n_pairs, int kind,
                             double alpha, dhf_boot_pair *out);

/* PCK = sum correct / sum n. B >= 1 resamples, 0 < level < 1 (e.g. 0.95). Errors: no
 * keypoints, bad B or level. */
int dhf_bootstrap_pck(const dhf_boot_pair *pairs, int n_pairs, int B, double level,
                      uint64_t seed, dhf_boot_interval *out);

/* PCK(a) - PCK(b) on the same pairs (a[i].n == b[i].n). *frac_le0 (may be NULL): the
 * share of resamples in which the difference is <= 0, a one-sided bootstrap p-value
 * for "a is better". */
int dhf_bootstrap_pck_diff(const dhf_boot_pair *a, const dhf_boot_pair *b, int n_pairs,
                           int B, double level, uint64_t seed, dhf_boot_interval *out,
                           double *frac_le0);

#endif
