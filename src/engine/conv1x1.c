/* conv1x1.c — the AVX-512 1x1 convolutions of conv1x1.h: weight packing, the register
 * tiles, the loop over (sample, pixel block) units and the fused per-channel sums. */
#include "engine/conv1x1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/blocked.h"

#define BLK DHF_BLK
#define PIX_TILE 8      /* pixels of one register tile */
#define OUT_TILE 3      /* output blocks of one register tile: 3 x 8 = 24 accumulators */
#define K_CHUNK 128     /* input channels per pass over a pixel block (weights in L1) */
#define PIX_BLOCK 256   /* pixels of one unit of work (its input chunk in L2) */

struct dhf_c1x1 {
    int N, C, O, H, W;
    size_t npx;
    int nblk;           /* pixel blocks per image */
    float *wp;          /* packed weights: cpad(C) * cpad(O) floats */
    double *part;       /* [N * nblk][2][cpad(max(C, O))]: per-unit sums */
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
    const size_t mp = cp > op ? cp : op;   /* output channels: O forward, C backward */
    c->part = aligned_alloc(64, (size_t)N * (size_t)c->nblk * 2 * mp * sizeof(double));
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
    const int groups = (ob + OUT_TILE - 1) / OUT_TILE;
    /* the inner loop walks the source's unit stride: k for a forward, m transposed */
#pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        const int g0 = g * OUT_TILE;
        const int ot = ob - g0 < OUT_TILE ? ob - g0 : OUT_TILE, width = ot * BLK;
        float *dst = wp + (size_t)g0 * BLK * kp;
        if (si == 1) {
            for (int j = 0; j < width; j++) {
                const int m = g0 * BLK + j;
                for (int k = 0; k < kp; k++)
                    dst[(size_t)k * width + j] = m < Mo && k < Mk ? w[m * so + k] : 0.f;
            }
        } else {
            for (int k = 0; k < kp; k++)
                for (int j = 0; j < width; j++) {
                    const int m = g0 * BLK + j;
                    dst[(size_t)k * width + j] = m < Mo && k < Mk ? w[m * so + k * si] : 0.f;
                }
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

/* What a tile does with its outputs after the last reduction chunk, besides storing
 * them: nothing, or add their sums and sums of squares (GroupNorm statistics). */
enum { EPI_NONE, EPI_STATS };

/* One register tile: OT output blocks x PT pixels, over kc input channels from x
 * (blocked, block stride xs) with weights w ([kc][OT * 16]); y (block stride ys)
 * initialised (first) or accumulated; then the epilogue EPI into the running float
 * sums fs, fq (16 per output block). */
#define C1X1_TILE(EPI, OT, PT)                                                              \
    AVX512 static inline __attribute__((always_inline)) void tile_##EPI##_##OT##_##PT(      \
        const float *restrict x, size_t xs, const float *restrict w, int kc,               \
        float *restrict y, size_t ys, int first, float *restrict fs, float *restrict fq)   \
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
        if (EPI != EPI_NONE)                                                                \
            for (int o = 0; o < OT; o++) {                                                  \
                __m512 ts = _mm512_load_ps(fs + o * BLK), tq = _mm512_load_ps(fq + o * BLK); \
                for (int p = 0; p < PT; p++) {                                              \
                    ts = _mm512_add_ps(ts, acc[o][p]);                                      \
                    tq = _mm512_fmadd_ps(acc[o][p], acc[o][p], tq);                         \
                }                                                                           \
                _mm512_store_ps(fs + o * BLK, ts);                                          \
                _mm512_store_ps(fq + o * BLK, tq);                                          \
            }                                                                               \
    }

/* The tiles of one output group over pixels [0, np) of a unit: 8-pixel tiles, then
 * single pixels. The epilogue's sums run in float over at most 64 pixels and are then
 * added to the doubles s, q (16 per output block). */
#define C1X1_GROUP(EPI, OT)                                                                 \
    C1X1_TILE(EPI, OT, 8)                                                                   \
    C1X1_TILE(EPI, OT, 1)                                                                   \
    AVX512 static void group_##EPI##_##OT(                                                  \
        const float *restrict x, size_t xs, const float *restrict w, int kc,               \
        float *restrict y, size_t ys, size_t np, int first, double *restrict s,            \
        double *restrict q)                                                                \
    {                                                                                       \
        float fs[OT * BLK] __attribute__((aligned(64))) = { 0 };                            \
        float fq[OT * BLK] __attribute__((aligned(64))) = { 0 };                            \
        size_t p = 0, run_px = 0;                                                           \
        for (; p + PIX_TILE <= np; p += PIX_TILE) {                                         \
            tile_##EPI##_##OT##_8(x + p * BLK, xs, w, kc, y + p * BLK, ys, first, fs, fq);  \
            if (EPI != EPI_NONE && (run_px += PIX_TILE) == 64) {                            \
                flush_sums(OT, fs, fq, s, q);                                               \
                run_px = 0;                                                                 \
            }                                                                               \
        }                                                                                   \
        for (; p < np; p++)                                                                 \
            tile_##EPI##_##OT##_1(x + p * BLK, xs, w, kc, y + p * BLK, ys, first, fs, fq);  \
        if (EPI != EPI_NONE)                                                                \
            flush_sums(OT, fs, fq, s, q);                                                   \
    }

/* adds the running float sums of ot output blocks to the doubles and zeroes them */
AVX512 static inline void flush_sums(int ot, float *fs, float *fq, double *s, double *q)
{
    for (int o = 0; o < ot; o++) {
        add_lanes(s + o * BLK, _mm512_load_ps(fs + o * BLK));
        add_lanes(q + o * BLK, _mm512_load_ps(fq + o * BLK));
        _mm512_store_ps(fs + o * BLK, _mm512_setzero_ps());
        _mm512_store_ps(fq + o * BLK, _mm512_setzero_ps());
    }
}

C1X1_GROUP(EPI_NONE, 1)
C1X1_GROUP(EPI_NONE, 2)
C1X1_GROUP(EPI_NONE, 3)
C1X1_GROUP(EPI_STATS, 1)
C1X1_GROUP(EPI_STATS, 2)
C1X1_GROUP(EPI_STATS, 3)

typedef void (*group_fn)(const float *restrict, size_t, const float *restrict, int,
                         float *restrict, size_t, size_t, int, double *restrict,
                         double *restrict);

/* out [N, Mb blocks] = packed wp (Mb out blocks, Kb in blocks) applied to in [N, Kb
 * blocks]; with sum/sumsq, the outputs' sums per unit in c->part, then reduced into
 * sum/sumsq [N * Mo]. A thread runs a (sample, pixel block) unit; within it the
 * reduction runs in chunks of K_CHUNK input channels over every output group. */
AVX512 static void run(dhf_c1x1 *c, const float *in, int Kb, float *out, int Mb, int Mo,
                       double *sum, double *sumsq)
{
#define GROUPS(E) { NULL, group_##E##_1, group_##E##_2, group_##E##_3 }
    static const group_fn groups[2][OUT_TILE + 1] = { GROUPS(EPI_NONE), GROUPS(EPI_STATS) };
#undef GROUPS
    const int epi = sum ? EPI_STATS : EPI_NONE;
    const size_t npx = c->npx, bs = npx * BLK, kp = (size_t)Kb * BLK, mp = (size_t)Mb * BLK;
    const int N = c->N, nblk = c->nblk;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int pb = 0; pb < nblk; pb++) {
            const size_t p0 = (size_t)pb * PIX_BLOCK;
            const size_t np = p0 + PIX_BLOCK < npx ? PIX_BLOCK : npx - p0;
            double *ps = c->part + ((size_t)n * nblk + pb) * 2 * mp, *pq = ps + mp;
            if (epi != EPI_NONE)
                memset(ps, 0, 2 * mp * sizeof(double));
            const float *xn = in + (size_t)n * kp * npx + p0 * BLK;
            for (size_t k0 = 0; k0 < kp; k0 += K_CHUNK) {
                const int kc = (int)(kp - k0 < K_CHUNK ? kp - k0 : K_CHUNK);
                const int first = k0 == 0, e = k0 + (size_t)kc == kp ? epi : EPI_NONE;
                for (int g0 = 0; g0 < Mb; g0 += OUT_TILE) {
                    const int ot = Mb - g0 < OUT_TILE ? Mb - g0 : OUT_TILE;
                    const float *w = c->wp + (size_t)g0 * BLK * kp + k0 * (size_t)ot * BLK;
                    const size_t yo = (size_t)n * mp * npx + (size_t)g0 * bs + p0 * BLK;
                    groups[e][ot](xn + k0 / BLK * bs, bs, w, kc, out + yo, bs, np, first,
                                  ps + g0 * BLK, pq + g0 * BLK);
                }
            }
        }
    if (epi == EPI_NONE)
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
