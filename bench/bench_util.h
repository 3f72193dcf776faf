/* bench_util.h — what the bench programs share: the clock and the
 * median of a set of timings. Header-only: every bench source file is its own program. */
#ifndef DHF_BENCH_UTIL_H
#define DHF_BENCH_UTIL_H

#include <stdlib.h>

#include "core/clock.h"   /* dhf_now(), the project's one clock */

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sorts v[0..n) in place (so v[0] is then the minimum) and returns its median */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
