/* attention_rows.c — block-of-rows attention on oneDNN products and a vectorised
 * softmax (attention_rows.h). The scores block lives in one buffer kept between calls
 * (grown when a larger block is asked for), as do the row sums and the bfloat16 rows'
 * float copies, so a UNet call allocates none. */
#include "engine/attention_rows.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/omp_threads.h"
#include "engine/scalar_math.h"
#include "engine/simd16.h"

/* ---- softmax ------------------------------------------------------------------ */

/* exp(x) for x <= 0 (a softmax's shifted scores), flushed to 0 below -87 as expf's
 * own underflow */
static inline float exp_nonpos(float x)
{
    float e = dhf_expf_clamped(x);
    return x < -87.0f ? 0.0f : e;
}

/* exp(x - max) over one float row in place, returning the row's sum (the division
 * is left to the caller, who divides the [rows, dv] output instead of the [rows, M]
 * scores). 16 lanes of partial maxima and sums, folded at the end (the compiler does
 * not reorder a float reduction by itself). */
DHF_HOT static float exp_row_f32(float *x, int64_t M)
{
    enum { L = 16 };
    float mx[L], sm[L];
    for (int l = 0; l < L; l++)
        sm[l] = 0.0f;
    int64_t Mv = M / L * L;
    /* the max as a 16-lane vector: the compiler keeps a scalar max loop scalar */
    v16 vm = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY,
              -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY,
              -INFINITY, -INFINITY};
    for (int64_t c = 0; c < Mv; c += L) {
        v16 v = V16_LOAD(x + c);
        v16i gt = (v16i)(v > vm);
        vm = (v16)(((v16i)v & gt) | ((v16i)vm & ~gt));
    }
    V16_STORE(mx, vm);
    float m = -INFINITY;
    for (int l = 0; l < L; l++)
        m = mx[l] > m ? mx[l] : m;
    for (int64_t c = Mv; c < M; c++)
        m = x[c] > m ? x[c] : m;
    for (int64_t c = 0; c < Mv; c += L)
        for (int l = 0; l < L; l++) {
            float e = exp_nonpos(x[c + l] - m);
            x[c + l] = e;
            sm[l] += e;
        }
    float s = 0.0f;
    for (int l = 0; l < L; l++)
        s += sm[l];
    for (int64_t c = Mv; c < M; c++) {
        x[c] = exp_nonpos(x[c] - m);
        s += x[c];
    }
    return s;
}

/* the same on a bfloat16 row, through a float row (tmp, M floats) */
DHF_HOT static float exp_row_bf16(uint16_t *h, int64_t M, float *tmp)
{
    for (int64_t c = 0; c < M; c++)
        tmp[c] = dhf_bf16_to_f32(h[c]);
    float s = exp_row_f32(tmp, M);
    for (int64_t c = 0; c < M; c++)
        h[c] = dhf_f32_to_bf16(tmp[c]);
    return s;
}

/* rows of x [rows, M] = exp(x - row max); sums[r] = the row's sum. tmp: a float row of
 * M per OpenMP thread (bfloat16 rows are widened there; unused for float32). */
static void exp_rows(void *x, int64_t rows, int64_t M, dhf_dmm_dtype dtype, float *sums,
                     float *tmp)
{
    if (dtype == DHF_DMM_F32) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            sums[r] = exp_row_f32((float *)x + r * M, M);
        return;
    }
#pragma omp parallel num_threads(dhf_omp_max_threads())
    {
        float *mine = tmp + (size_t)dhf_omp_thread_id() * (size_t)M;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            sums[r] = exp_row_bf16((uint16_t *)x + r * M, M, mine);
    }
}

/* rows of o [rows, dv] /= sums[r] */
DHF_HOT static void divide_rows(void *o, int64_t rows, int64_t dv, dhf_dmm_dtype dtype,
                                const float *sums)
{
    for (int64_t r = 0; r < rows; r++) {
        float inv = 1.0f / sums[r];
        if (dtype == DHF_DMM_F32) {
            float *orow = (float *)o + r * dv;
            for (int64_t c = 0; c < dv; c++)
                orow[c] *= inv;
        } else {
            uint16_t *orow = (uint16_t *)o + r * dv;
            for (int64_t c = 0; c < dv; c++)
                orow[c] = dhf_f32_to_bf16(dhf_bf16_to_f32(orow[c]) * inv);
        }
    }
}

int dhf_softmax_rows(void *x, int64_t rows, int64_t M, dhf_dmm_dtype dtype)
{
    float *sums = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *sums);
    if (!sums)
        return dhf_err_set("softmax_rows: out of memory");
    float *tmp = malloc((size_t)dhf_omp_max_threads() * (size_t)M * sizeof *tmp);
    int rc = tmp ? 0 : dhf_err_set("softmax_rows: out of memory");
    if (rc == 0) {
        exp_rows(x, rows, M, dtype, sums, tmp);
        divide_rows(x, rows, M, dtype, sums);
    }
    free(tmp);
    free(sums);
    return rc;
}

/* ---- the block loop ------------------------------------------------------------- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static void *g_scores;
static size_t g_scores_bytes;
static float *g_sums;
static int64_t g_sums_rows;
static float *g_tmp;          /* a float row of M per thread (bfloat16 scores) */
static size_t g_tmp_floats;

int dhf_attn_rows_forward(const dhf_attn_shape *s, const void *q, const void *kt,
                          const void *v, void *o)
{
    if (s->heads < 1 || s->N < 1 || s->M < 1 || s->d < 1 || s->dv < 1)
        return dhf_err_set("attention_rows: bad shape");
    size_t elem = s->dtype == DHF_DMM_BF16 ? 2 : 4;
    int64_t rows = (int64_t)(s->block_bytes / ((size_t)s->M * elem));
    if (rows < 1)
        rows = 1;
    if (rows > s->N)
        rows = s->N;
    size_t need = (size_t)rows * (size_t)s->M * elem;
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    if (need > g_scores_bytes || rows > g_sums_rows) {
        free(g_scores);
        free(g_sums);
        g_scores = malloc(need);
        g_sums = malloc((size_t)rows * sizeof *g_sums);
        g_scores_bytes = g_scores && g_sums ? need : 0;
        g_sums_rows = g_scores && g_sums ? rows : 0;
        if (!g_scores || !g_sums) {
            pthread_mutex_unlock(&g_mu);
            return dhf_err_set("attention_rows: out of memory for %zu bytes of scores", need);
        }
    }
    size_t tmp_floats = s->dtype == DHF_DMM_BF16
                            ? (size_t)dhf_omp_max_threads() * (size_t)s->M : 0;
    if (tmp_floats > g_tmp_floats) {
        free(g_tmp);
        g_tmp = malloc(tmp_floats * sizeof *g_tmp);
        g_tmp_floats = g_tmp ? tmp_floats : 0;
        if (!g_tmp) {
            pthread_mutex_unlock(&g_mu);
            return dhf_err_set("attention_rows: out of memory for %zu floats of rows",
                               tmp_floats);
        }
    }
    const char *qb = q, *kb = kt, *vb = v;
    char *ob = o;
    for (int64_t h = 0; h < s->heads && rc == 0; h++) {
        for (int64_t r0 = 0; r0 < s->N && rc == 0; r0 += rows) {
            int64_t len = s->N - r0 < rows ? s->N - r0 : rows;
            /* scores [len, M] = q[h][r0 : r0+len] . kt[h] */
            dhf_dmm_shape qk = {.batch = 1, .M = len, .K = s->d, .N = s->M,
                                .a_stride = {len * s->d, s->d, 1},
                                .b_stride = {s->d * s->M, s->M, 1},
                                .c_stride = {len * s->M, s->M, 1}, .dtype = s->dtype};
            rc = dhf_dmm_run(&qk, qb + ((size_t)(h * s->N + r0) * (size_t)s->d) * elem,
                             kb + (size_t)(h * s->d * s->M) * elem, NULL, g_scores);
            if (rc != 0)
                break;
            exp_rows(g_scores, len, s->M, s->dtype, g_sums, g_tmp);
            /* o[h][r0 : r0+len] = exp(scores - max) . v[h] / sum: the softmax's
             * division applied to the dv-wide output rows, not the M-wide scores */
            dhf_dmm_shape pv = {.batch = 1, .M = len, .K = s->M, .N = s->dv,
                                .a_stride = {len * s->M, s->M, 1},
                                .b_stride = {s->M * s->dv, s->dv, 1},
                                .c_stride = {len * s->dv, s->dv, 1}, .dtype = s->dtype};
            rc = dhf_dmm_run(&pv, g_scores, vb + (size_t)(h * s->M * s->dv) * elem, NULL,
                             ob + ((size_t)(h * s->N + r0) * (size_t)s->dv) * elem);
            if (rc == 0)
                divide_rows(ob + ((size_t)(h * s->N + r0) * (size_t)s->dv) * elem, len, s->dv,
                            s->dtype, g_sums);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}
