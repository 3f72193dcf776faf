/* bootstrap.c — percentile and paired bootstrap intervals of pooled PCK
 * (bootstrap.h). */
#include "eval/bootstrap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) without modulo bias */
static int draw(uint64_t *s, int n)
{
    const uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    uint64_t r;
    do
        r = splitmix64(s);
    while (r >= lim);
    return (int)(r % (uint64_t)n);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's default (linear) quantile of sorted v[0..n) */
static double quantile(const double *v, int n, double q)
{
    const double pos = q * (n - 1);
    const int i = (int)floor(pos);
    if (i >= n - 1)
        return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

static int check(int n_pairs, int B, double level)
{
    if (n_pairs < 1)
        return dhf_err_set("bootstrap: no pairs");
    if (B < 1)
        return dhf_err_set("bootstrap: at least 1 resample expected, got %d", B);
    if (!(level > 0 && level < 1))
        return dhf_err_set("bootstrap: level must be in (0, 1), got %g", level);
    return 0;
}

void dhf_boot_pairs_from_kps(const dhf_pck_kp *kps, size_t n_kps, int n_pairs, int kind,
                             double alpha, dhf_boot_pair *out)
{
    memset(out, 0, sizeof *out * (size_t)n_pairs);
    for (size_t k = 0; k < n_kps; k++) {
        const dhf_pck_kp *p = &kps[k];
        if (p->pair < 0 || p->pair >= n_pairs)
            continue;
        out[p->pair].n++;
        out[p->pair].correct +=
            dhf_pck_correct(dhf_pck_distance(p->pred, p->gt), alpha, p->size[kind]);
    }
}

/* resamples of PCK(a) (b NULL) or PCK(a) - PCK(b), with the same pair draws */
static int resample(const dhf_boot_pair *a, const dhf_boot_pair *b, int n_pairs, int B,
                    double level, uint64_t seed, dhf_boot_interval *out, double *frac_le0)
{
    long n = 0, ca = 0, cb = 0;
    for (int i = 0; i < n_pairs; i++) {
        if (b && a[i].n != b[i].n)
            return dhf_err_set("bootstrap: pair %d has %ld keypoints in one method, %ld in "
                               "the other", i, a[i].n, b[i].n);
        n += a[i].n;
        ca += a[i].correct;
        cb += b ? b[i].correct : 0;
    }
    if (n == 0)
        return dhf_err_set("bootstrap: no keypoints");
    double *v = malloc(sizeof *v * (size_t)B);
    if (!v)
        return dhf_err_set("bootstrap: out of memory for %d resamples", B);
    uint64_t s = seed;
    long le0 = 0;
    for (int r = 0; r < B; r++) {
        long rn = 0, ra = 0, rb = 0;
        for (int k = 0; k < n_pairs; k++) {
            const int i = draw(&s, n_pairs);
            rn += a[i].n;
            ra += a[i].correct;
            rb += b ? b[i].correct : 0;
        }
        /* a resample of keypoint-less pairs only: no PCK; count it as no difference */
        v[r] = rn ? ((double)ra - (b ? (double)rb : 0.0)) / (double)rn : 0.0;
        le0 += v[r] <= 0;
    }
    qsort(v, (size_t)B, sizeof *v, cmp_double);
    out->estimate = ((double)ca - (b ? (double)cb : 0.0)) / (double)n;
    out->lo = quantile(v, B, (1 - level) / 2);
    out->hi = quantile(v, B, 1 - (1 - level) / 2);
    out->resamples = B;
    if (frac_le0)
        *frac_le0 = (double)le0 / B;
    free(v);
    return 0;
}

int dhf_bootstrap_pck(const dhf_boot_pair *pairs, int n_pairs, int B, double level,
                      uint64_t seed, dhf_boot_interval *out)
{
    if (check(n_pairs, B, level))
        return -1;
    return resample(pairs, NULL, n_pairs, B, level, seed, out, NULL);
}

int dhf_bootstrap_pck_diff(const dhf_boot_pair *a, const dhf_boot_pair *b, int n_pairs,
                           int B, double level, uint64_t seed, dhf_boot_interval *out,
                           double *frac_le0)
{
    if (check(n_pairs, B, level))
        return -1;
    return resample(a, b, n_pairs, B, level, seed, out, frac_le0);
}
