/* groupnorm_nhwc.c — the fused GroupNorm(+SiLU) kernel on channels-last buffers
 * (groupnorm_nhwc.h). Rows (pixels) are split among OpenMP threads; each pass runs
 * over whole rows of C channels, so the inner loops are unit-stride over channels and
 * the compiler vectorises them (DHF_HOT clones). bfloat16 rows are widened into a
 * per-thread float row first. */
#include "engine/groupnorm_nhwc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/scalar_math.h"
#include "engine/omp_threads.h"
#include "engine/simd16.h"

/* float sums run over this many rows before they are added into the double ones */
#define ROWS_PER_PARTIAL 32

/* Row r of x as floats: x itself (float32) or widened into tmp (bfloat16). */
static inline const float *row_f32(const dhf_gn_shape *s, const void *x, int64_t r, float *tmp)
{
    if (!s->bf16)
        return (const float *)x + r * s->C;
    const uint16_t *h = (const uint16_t *)x + r * s->C;
    for (int64_t c = 0; c < s->C; c++)
        tmp[c] = dhf_bf16_to_f32(h[c]);
    return tmp;
}

/* acc[c] += sum over rows [r0, r1) of (x[r, c] - center[c])^2 when center, else of
 * x[r, c]; float partials of ROWS_PER_PARTIAL rows, added into double. */
DHF_HOT static void sum_rows(const dhf_gn_shape *s, const void *x, int64_t r0, int64_t r1,
                             const float *center, float *part, float *tmp, double *acc)
{
    const int64_t C = s->C;
    for (int64_t r = r0; r < r1; r += ROWS_PER_PARTIAL) {
        int64_t end = r + ROWS_PER_PARTIAL < r1 ? r + ROWS_PER_PARTIAL : r1;
        memset(part, 0, (size_t)C * sizeof *part);
        for (int64_t q = r; q < end; q++) {
            const float *xr = row_f32(s, x, q, tmp);
            if (center) {
                for (int64_t c = 0; c < C; c++) {
                    float d = xr[c] - center[c];
                    part[c] += d * d;
                }
            } else {
                for (int64_t c = 0; c < C; c++)
                    part[c] += xr[c];
            }
        }
        for (int64_t c = 0; c < C; c++)
            acc[c] += part[c];
    }
}

/* y rows [r0, r1) = silu?((x - center) * scale + shift): centred first, so activations
 * whose mean is large next to their spread keep their digits (x * scale + shift would
 * cancel two large terms) */
DHF_HOT static void apply_rows(const dhf_gn_shape *s, const void *x, void *y, int64_t r0,
                               int64_t r1, const float *center, const float *scale,
                               const float *shift, float *tmp)
{
    const int64_t C = s->C;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = row_f32(s, x, r, tmp);
        float *out = s->bf16 ? tmp : (float *)y + r * C;
        for (int64_t c = 0; c < C; c++) {
            float v = (xr[c] - center[c]) * scale[c] + shift[c];
            out[c] = s->silu ? v / (1.0f + dhf_expf_clamped(-v)) : v;
        }
        if (s->bf16) {
            uint16_t *yr = (uint16_t *)y + r * C;
            for (int64_t c = 0; c < C; c++)
                yr[c] = dhf_f32_to_bf16(out[c]);
        }
    }
}

/* Per-channel sums over all rows of image n (center: see sum_rows) into sum[C]. */
static void channel_sums(const dhf_gn_shape *s, const void *xn, const float *center,
                         float *work, double *thr_acc, double *sum, int T)
{
    const int64_t C = s->C, P = s->P;
    memset(thr_acc, 0, (size_t)T * (size_t)C * sizeof *thr_acc);
#pragma omp parallel num_threads(T)
    {
        int t = dhf_omp_thread_id();
        int64_t per = (P + T - 1) / T, r0 = t * per, r1 = r0 + per < P ? r0 + per : P;
        float *part = work + (size_t)t * 2 * (size_t)C, *tmp = part + C;
        if (r0 < r1)
            sum_rows(s, xn, r0, r1, center, part, tmp, thr_acc + (size_t)t * (size_t)C);
    }
    for (int64_t c = 0; c < C; c++) {
        double v = 0;
        for (int t = 0; t < T; t++)
            v += thr_acc[(size_t)t * (size_t)C + (size_t)c];
        sum[c] = v;
    }
}

int dhf_gn_nhwc_forward(const dhf_gn_shape *s, const void *x, const void *gamma,
                        const void *beta, void *y)
{
    if (s->N < 1 || s->P < 1 || s->C < 1 || s->G < 1 || s->C % s->G != 0)
        return dhf_err_set("groupnorm_nhwc: %lld channels in %d groups", (long long)s->C,
                           s->G);
    const int64_t C = s->C, P = s->P, cpg = C / s->G;
    const int T = dhf_omp_max_threads();
    size_t elem = s->bf16 ? 2 : 4;
    /* one allocation: per-thread float work rows, per-thread double sums, per-channel
     * sums, centers, scales, shifts */
    size_t n_work = (size_t)T * 2 * (size_t)C, n_acc = (size_t)T * (size_t)C;
    double *dbuf = malloc((n_acc + (size_t)C) * sizeof(double));
    float *fbuf = malloc((n_work + 3 * (size_t)C) * sizeof(float));
    if (!dbuf || !fbuf) {
        free(dbuf);
        free(fbuf);
        return dhf_err_set("groupnorm_nhwc: out of memory");
    }
    double *thr_acc = dbuf, *sum = dbuf + n_acc;
    float *work = fbuf, *center = fbuf + n_work, *scale = center + C, *shift = scale + C;
    const double count = (double)cpg * (double)P;
    for (int64_t n = 0; n < s->N; n++) {
        const char *xn = (const char *)x + (size_t)n * (size_t)P * (size_t)C * elem;
        char *yn = (char *)y + (size_t)n * (size_t)P * (size_t)C * elem;
        channel_sums(s, xn, NULL, work, thr_acc, sum, T);
        for (int g = 0; g < s->G; g++) {
            double m = 0;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++)
                m += sum[c];
            m /= count;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++)
                center[c] = (float)m;
        }
        channel_sums(s, xn, center, work, thr_acc, sum, T);
        for (int g = 0; g < s->G; g++) {
            double v = 0;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++)
                v += sum[c];
            /* the squared deviations are from the float mean; its rounding error e
             * adds e^2, far below float precision of the variance */
            float rstd = (float)(1.0 / sqrt(v / count + s->eps));
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
                float gm = s->bf16 ? dhf_bf16_to_f32(((const uint16_t *)gamma)[c])
                                   : ((const float *)gamma)[c];
                float bt = s->bf16 ? dhf_bf16_to_f32(((const uint16_t *)beta)[c])
                                   : ((const float *)beta)[c];
                scale[c] = rstd * gm;
                shift[c] = bt;
            }
        }
#pragma omp parallel num_threads(T)
        {
            int t = dhf_omp_thread_id();
            int64_t per = (P + T - 1) / T, r0 = t * per, r1 = r0 + per < P ? r0 + per : P;
            float *tmp = work + (size_t)t * 2 * (size_t)C;
            if (r0 < r1)
                apply_rows(s, xn, yn, r0, r1, center, scale, shift, tmp);
        }
    }
    free(dbuf);
    free(fbuf);
    return 0;
}
