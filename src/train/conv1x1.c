/* conv1x1.c — the AVX-512 1x1 convolutions of conv1x1.h: weight packing, the register
 * tiles, the loop over (sample, pixel block) units and the fused per-channel sums. */
#include "train/conv1x1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/blocked.h"

#define BLK DHF_BLK
#define PIX_TILE 8      /* pixels of one register tile */
#define OUT_TILE 3      /* output blocks of one register tile: 3 x 8 = 24 accumulators */
#define K_CHUNK 128     /* input channels per pass over a pixel block (weights in L1) */
#define PIX_BLOCK 256   /* pixels of one unit of work (its input chunk in L2) */

struct dhf_c1x1 {
    int N, C, O, H, W;
    size_t npx;
    int nblk;           /* pixel blocks per image */
    float *wp;          /* packed weights, cpad(max(C, O))^2 floats at most */
    double *part;       /* [N * nblk][2][cpad(O)]: per-unit sums and sums of squares */
};

#if defined(__x86_64__) && defined(__GNUC__)
#define DHF_C1X1_KERNELS 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))
#endif

bool dhf_c1x1_supported(void)
{
#ifdef DHF_C1X1_KERNELS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

void dhf_c1x1_free(dhf_c1x1 *c)
{
    if (!c)
        return;
    free(c->wp);
    free(c->part);
    free(c);
}

int dhf_c1x1_create(dhf_c1x1 **out, int N, int C, int O, int H, int W)
{
    *out = NULL;
    if (!dhf_c1x1_supported())
        return dhf_err_set("conv1x1: this CPU has no AVX-512F (or the build has no kernels)");
    if (N < 1 || C < 1 || O < 1 || H < 1 || W < 1)
        return dhf_err_set("conv1x1: bad shape N=%d C=%d O=%d %dx%d", N, C, O, H, W);
    dhf_c1x1 *c = calloc(1, sizeof *c);
    if (!c)
        return dhf_err_set("conv1x1: out of memory");
    c->N = N;
    c->C = C;
    c->O = O;
    c->H = H;
    c->W = W;
    c->npx = (size_t)H * (size_t)W;
    c->nblk = (int)((c->npx + PIX_BLOCK - 1) / PIX_BLOCK);
    const size_t cp = (size_t)dhf_blk_cpad(C), op = (size_t)dhf_blk_cpad(O);
    c->wp = aligned_alloc(64, cp * op * sizeof(float));
    c->part = aligned_alloc(64, (size_t)N * (size_t)c->nblk * 2 * op * sizeof(double));
    if (!c->wp || !c->part) {
        dhf_c1x1_free(c);
        return dhf_err_set("conv1x1: out of memory for N=%d C=%d O=%d %dx%d", N, C, O, H, W);
    }
    *out = c;
    return 0;
}

#ifdef DHF_C1X1_KERNELS

/* Packs the matrix M (Mo rows of outputs x Mk inputs, element (m, k) at
 * w[m * so + k * si]) for the tiles: group g of up to OUT_TILE output blocks holds
 * [k][its outputs] for every k of the padded input, zeros outside M. */
static void pack_weights(const float *w, int Mo, int Mk, size_t so, size_t si, float *wp)
{
    const int ob = (int)(dhf_blk_cpad(Mo) / BLK), kp = (int)dhf_blk_cpad(Mk);
    for (int g0 = 0; g0 < ob; g0 += OUT_TILE) {
        const int ot = ob - g0 < OUT_TILE ? ob - g0 : OUT_TILE, width = ot * BLK;
        float *dst = wp + (size_t)g0 * BLK * kp;
        for (int k = 0; k < kp; k++)
            for (int j = 0; j < width; j++) {
                const int m = g0 * BLK + j;
                dst[(size_t)k * width + j] = m < Mo && k < Mk ? w[m * so + k * si] : 0.f;
            }
    }
}

/* adds 16 float lanes to 16 doubles */
AVX512 static inline void add_lanes(double *d, __m512 v)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    _mm512_storeu_pd(d, _mm512_add_pd(_mm512_loadu_pd(d), lo));
    _mm512_storeu_pd(d + 8, _mm512_add_pd(_mm512_loadu_pd(d + 8), hi));
}

/* One register tile: OT output blocks x PT pixels, over kc input channels from x
 * (blocked, block stride xs) with weights w ([kc][OT * 16]); y (block stride ys)
 * initialised (first) or accumulated; on the last chunk, with s/q (per output block:
 * 16 doubles each, block stride sq_stride) the tile's sums and sums of squares added. */
#define C1X1_TILE(OT, PT)                                                                   \
    AVX512 static inline __attribute__((always_inline)) void tile_##OT##_##PT(              \
        const float *restrict x, size_t xs, const float *restrict w, int kc,               \
        float *restrict y, size_t ys, int first, double *restrict s, double *restrict q)   \
    {                                                                                       \
        __m512 acc[OT][PT];                                                                 \
        for (int o = 0; o < OT; o++)                                                        \
            for (int p = 0; p < PT; p++)                                                    \
                acc[o][p] = first ? _mm512_setzero_ps()                                     \
                                  : _mm512_load_ps(y + o * ys + p * BLK);                   \
        for (int kb = 0; kb < kc / BLK; kb++) {                                             \
            const float *xb = x + kb * xs;                                                  \
            const float *wb = w + (size_t)kb * BLK * OT * BLK;                              \
            for (int kk = 0; kk < BLK; kk++) {                                              \
                __m512 wv[OT];                                                              \
                for (int o = 0; o < OT; o++)                                                \
                    wv[o] = _mm512_load_ps(wb + (kk * OT + o) * BLK);                       \
                for (int p = 0; p < PT; p++) {                                              \
                    const __m512 xv = _mm512_set1_ps(xb[p * BLK + kk]);                     \
                    for (int o = 0; o < OT; o++)                                            \
                        acc[o][p] = _mm512_fmadd_ps(wv[o], xv, acc[o][p]);                  \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        for (int o = 0; o < OT; o++)                                                        \
            for (int p = 0; p < PT; p++)                                                    \
                _mm512_store_ps(y + o * ys + p * BLK, acc[o][p]);                           \
        if (s)                                                                              \
            for (int o = 0; o < OT; o++) {                                                  \
                __m512 ts = acc[o][0], tq = _mm512_mul_ps(acc[o][0], acc[o][0]);            \
                for (int p = 1; p < PT; p++) {                                              \
                    ts = _mm512_add_ps(ts, acc[o][p]);                                      \
                    tq = _mm512_fmadd_ps(acc[o][p], acc[o][p], tq);                         \
                }                                                                           \
                add_lanes(s + o * BLK, ts);                                                 \
                add_lanes(q + o * BLK, tq);                                                 \
            }                                                                               \
    }

C1X1_TILE(3, 8)
C1X1_TILE(2, 8)
C1X1_TILE(1, 8)
C1X1_TILE(3, 1)
C1X1_TILE(2, 1)
C1X1_TILE(1, 1)

typedef void (*tile_fn)(const float *restrict, size_t, const float *restrict, int,
                        float *restrict, size_t, int, double *restrict, double *restrict);

/* out [N, Mb blocks] = packed wp (Mb out blocks, Kb in blocks) applied to in [N, Kb
 * blocks]; with sums, c->part filled per unit and reduced into sum/sumsq [N * Mo]. */
AVX512 static void run(dhf_c1x1 *c, const float *in, int Kb, float *out, int Mb, int Mo,
                       double *sum, double *sumsq)
{
    static const tile_fn wide[OUT_TILE + 1] = { NULL, tile_1_8, tile_2_8, tile_3_8 };
    static const tile_fn narrow[OUT_TILE + 1] = { NULL, tile_1_1, tile_2_1, tile_3_1 };
    const size_t npx = c->npx, bs = npx * BLK, kp = (size_t)Kb * BLK, mp = (size_t)Mb * BLK;
    const int N = c->N, nblk = c->nblk;
    const bool sums = sum != NULL;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int pb = 0; pb < nblk; pb++) {
            const size_t p0 = (size_t)pb * PIX_BLOCK;
            const size_t p1 = p0 + PIX_BLOCK < npx ? p0 + PIX_BLOCK : npx;
            const size_t p8 = p0 + (p1 - p0) / PIX_TILE * PIX_TILE;
            double *ps = c->part + ((size_t)n * nblk + pb) * 2 * mp, *pq = ps + mp;
            if (sums)
                memset(ps, 0, 2 * mp * sizeof(double));
            const float *xn = in + (size_t)n * kp * npx;
            float *yn = out + (size_t)n * mp * npx;
            for (size_t k0 = 0; k0 < kp; k0 += K_CHUNK) {
                const int kc = (int)(kp - k0 < K_CHUNK ? kp - k0 : K_CHUNK);
                const int first = k0 == 0, last = k0 + (size_t)kc == kp;
                for (int g0 = 0; g0 < Mb; g0 += OUT_TILE) {
                    const int ot = Mb - g0 < OUT_TILE ? Mb - g0 : OUT_TILE;
                    const float *w = c->wp + (size_t)g0 * BLK * kp + k0 * (size_t)ot * BLK;
                    const float *x = xn + k0 / BLK * bs;
                    float *y = yn + (size_t)g0 * bs;
                    double *s = sums && last ? ps + g0 * BLK : NULL;
                    double *q = sums && last ? pq + g0 * BLK : NULL;
                    size_t p = p0;
                    for (; p < p8; p += PIX_TILE)
                        wide[ot](x + p * BLK, bs, w, kc, y + p * BLK, bs, first, s, q);
                    for (; p < p1; p++)
                        narrow[ot](x + p * BLK, bs, w, kc, y + p * BLK, bs, first, s, q);
                }
            }
        }
    if (!sums)
        return;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < Mo; m++) {
            double s = 0, q = 0;
            for (int pb = 0; pb < nblk; pb++) {
                const double *ps = c->part + ((size_t)n * nblk + pb) * 2 * mp;
                s += ps[m];
                q += ps[mp + m];
            }
            sum[(size_t)n * Mo + m] = s;
            sumsq[(size_t)n * Mo + m] = q;
        }
}

static int misaligned(const char *what, const void *a, const void *b)
{
    if (((uintptr_t)a | (uintptr_t)b) % 64 == 0)
        return 0;
    return dhf_err_set("conv1x1 %s: activation buffers must be 64-byte aligned", what);
}

int dhf_c1x1_forward(dhf_c1x1 *c, const float *x, const float *w, float *y, double *sum,
                     double *sumsq)
{
    if (misaligned("forward", x, y))
        return -1;
    if ((sum == NULL) != (sumsq == NULL))
        return dhf_err_set("conv1x1 forward: sum and sumsq must both be given or both NULL");
    pack_weights(w, c->O, c->C, (size_t)c->C, 1, c->wp);
    run(c, x, (int)(dhf_blk_cpad(c->C) / BLK), y, (int)(dhf_blk_cpad(c->O) / BLK), c->O, sum,
        sumsq);
    return 0;
}

int dhf_c1x1_backward_data(dhf_c1x1 *c, const float *dy, const float *w, float *dx)
{
    if (misaligned("backward-data", dy, dx))
        return -1;
    pack_weights(w, c->C, c->O, 1, (size_t)c->C, c->wp);
    run(c, dy, (int)(dhf_blk_cpad(c->O) / BLK), dx, (int)(dhf_blk_cpad(c->C) / BLK), c->C,
        NULL, NULL);
    return 0;
}

#else /* no kernels in this build: create already failed */

int dhf_c1x1_forward(dhf_c1x1 *c, const float *x, const float *w, float *y, double *sum,
                     double *sumsq)
{
    return dhf_err_set("conv1x1: not built for this platform");
}

int dhf_c1x1_backward_data(dhf_c1x1 *c, const float *dy, const float *w, float *dx)
{
    return dhf_err_set("conv1x1: not built for this platform");
}

#endif
