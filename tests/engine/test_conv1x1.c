/* test_conv1x1.c — the AVX-512 1x1 convolutions (train/conv1x1.h) against a direct
 * double-precision evaluation of y = W x and dx = W^T dy from the layout's definition:
 * channel counts that do and do not fill whole 16-blocks and 3-block tiles, more input
 * channels than one reduction chunk (128), pixel counts with a tail under 8 and more
 * than one 256-pixel block; the fused per-channel sums; zero padding channels in the
 * output; bit-identical results run to run and with 1 or 2 threads. Skipped on CPUs
 * without AVX-512F.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "engine/blocked.h"
#include "engine/conv1x1.h"

/* deterministic values in [-1, 1) */
static float val(uint64_t i)
{
    i = i * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((i >> 40) % 2000) / 1000.f - 1.f;
}

/* blocked [n, c, h*w] with zero padding lanes, values from seed */
static float *blocked_random(int n, int c, size_t npx, uint64_t seed)
{
    const size_t cb = (size_t)dhf_blk_cpad(c) / DHF_BLK, total = (size_t)n * cb * DHF_BLK * npx;
    float *t = aligned_alloc(64, total * sizeof(float) + 64);
    assert_non_null(t);
    for (int i = 0; i < n; i++)
        for (size_t ch = 0; ch < cb * DHF_BLK; ch++)
            for (size_t p = 0; p < npx; p++)
                t[((i * cb + ch / DHF_BLK) * npx + p) * DHF_BLK + ch % DHF_BLK] =
                    (int)ch < c ? val(seed + ((size_t)i * c + ch) * npx + p) : 0.f;
    return t;
}

/* n weights from seed (the caller frees) */
static float *random_weights(size_t n, uint64_t seed)
{
    float *w = malloc(sizeof(float) * n);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        w[i] = val(seed + i);
    return w;
}

/* n floats, 64-byte aligned, all NaN: what no kernel wrote stays visible */
static float *nan_filled(size_t n)
{
    float *t = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    assert_non_null(t);
    memset(t, 0xff, n * sizeof(float));
    return t;
}

static float at(const float *t, int c, size_t npx, int n, int ch, size_t p)
{
    const size_t cb = (size_t)dhf_blk_cpad(c) / DHF_BLK;
    return t[(((size_t)n * cb + (size_t)ch / DHF_BLK) * npx + p) * DHF_BLK + ch % DHF_BLK];
}

/* |got - want| <= 1e-5 * (1 + sum |terms|) for every element; padding lanes exactly 0 */
static void check_product(const float *got, int M, const float *in, int K, const float *w,
                          bool transposed, int C, int n_img, size_t npx, const char *what)
{
    for (int n = 0; n < n_img; n++)
        for (int m = 0; m < (int)dhf_blk_cpad(M); m++)
            for (size_t p = 0; p < npx; p++) {
                const float g = at(got, M, npx, n, m, p);
                if (m >= M) {
                    if (g != 0.f)
                        fail_msg("%s: padding channel %d of image %d pixel %zu is %g", what, m,
                                 n, p, (double)g);
                    continue;
                }
                double want = 0, mag = 0;
                for (int k = 0; k < K; k++) {
                    const double wk = transposed ? w[(size_t)k * C + m] : w[(size_t)m * C + k];
                    const double t = wk * at(in, K, npx, n, k, p);
                    want += t;
                    mag += fabs(t);
                }
                if (fabs(g - want) > 1e-5 * (1 + mag))
                    fail_msg("%s: (n %d, c %d, px %zu) got %.9g want %.9g", what, n, m, p,
                             (double)g, want);
            }
}

static void check_forward(int N, int C, int O, int H, int W)
{
    if (!dhf_c1x1_supported())
        skip();
    const size_t npx = (size_t)H * W;
    float *x = blocked_random(N, C, npx, 11), *w = random_weights((size_t)O * C, 900000);
    const size_t ny = (size_t)N * dhf_blk_cpad(O) * npx;
    float *y = nan_filled(ny), *y2 = nan_filled(ny);
    double *s = calloc((size_t)N * O, sizeof(double)), *q = calloc((size_t)N * O, sizeof(double));
    double *s2 = calloc((size_t)N * O, sizeof(double)), *q2 = calloc((size_t)N * O, sizeof(double));
    assert_true(s && q && s2 && q2);
    dhf_c1x1 *c = NULL;
    if (dhf_c1x1_create(&c, N, C, O, H, W))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_c1x1_forward(c, x, w, y, s, q), 0);
    char what[96];
    snprintf(what, sizeof what, "forward N=%d C=%d O=%d %dx%d", N, C, O, H, W);
    check_product(y, O, x, C, w, false, C, N, npx, what);
    for (int n = 0; n < N; n++)
        for (int m = 0; m < O; m++) {
            double ws = 0, wq = 0;
            for (size_t p = 0; p < npx; p++) {
                const double v = at(y, O, npx, n, m, p);
                ws += v;
                wq += v * v;
            }
            const double gs = s[(size_t)n * O + m], gq = q[(size_t)n * O + m];
            if (fabs(gs - ws) > 1e-4 * (1 + fabs(ws)) || fabs(gq - wq) > 1e-4 * (1 + wq))
                fail_msg("%s: sums of (n %d, c %d): got %.9g, %.9g want %.9g, %.9g", what, n, m,
                         gs, gq, ws, wq);
        }
    /* the same bits again, without the sums, and with one thread */
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    assert_int_equal(dhf_c1x1_forward(c, x, w, y2, s2, q2), 0);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    assert_memory_equal(y, y2, ny * sizeof(float));
    assert_memory_equal(s, s2, (size_t)N * O * sizeof(double));
    assert_memory_equal(q, q2, (size_t)N * O * sizeof(double));
    memset(y2, 0, ny * sizeof(float));
    assert_int_equal(dhf_c1x1_forward(c, x, w, y2, NULL, NULL), 0);
    assert_memory_equal(y, y2, ny * sizeof(float));
    dhf_c1x1_free(c);
    free(x);
    free(w);
    free(y);
    free(y2);
    free(s);
    free(q);
    free(s2);
    free(q2);
}

/* dx [C] = W^T dy [O] for a convolution C -> O */
static void check_backward_data(int N, int C, int O, int H, int W)
{
    if (!dhf_c1x1_supported())
        skip();
    const size_t npx = (size_t)H * W;
    float *dy = blocked_random(N, O, npx, 77), *w = random_weights((size_t)O * C, 500000);
    const size_t nx = (size_t)N * dhf_blk_cpad(C) * npx;
    float *dx = nan_filled(nx), *dx2 = nan_filled(nx);
    dhf_c1x1 *c = NULL;
    if (dhf_c1x1_create(&c, N, C, O, H, W))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_c1x1_backward_data(c, dy, w, dx), 0);
    char what[96];
    snprintf(what, sizeof what, "backward-data N=%d C=%d O=%d %dx%d", N, C, O, H, W);
    check_product(dx, C, dy, O, w, true, C, N, npx, what);
    assert_int_equal(dhf_c1x1_backward_data(c, dy, w, dx2), 0);
    assert_memory_equal(dx, dx2, nx * sizeof(float));
    dhf_c1x1_free(c);
    free(dy);
    free(w);
    free(dx);
    free(dx2);
}

static void test_forward_whole_tiles(void **state)
{
    (void)state;
    check_forward(2, 96, 384, 16, 16);     /* conv3's shape: 8 tiles of 3 blocks */
    check_forward(3, 320, 480, 8, 8);      /* conv1 + shortcut: 3 reduction chunks */
}

static void test_forward_partial_blocks_and_tails(void **state)
{
    (void)state;
    check_forward(2, 5, 20, 3, 7);         /* one input block, a 2-block tile, 21 px */
    check_forward(3, 40, 100, 17, 17);     /* 7 blocks: 3 + 3 + 1; 289 px: 2 blocks */
    check_forward(1, 130, 16, 1, 9);       /* 9 input blocks over two chunks */
}

static void test_backward_data(void **state)
{
    (void)state;
    check_backward_data(2, 96, 384, 16, 16);   /* conv3's backward-data: 384 -> 96 */
    check_backward_data(2, 20, 37, 5, 11);     /* padding on both sides, 55 px */
    check_backward_data(1, 260, 33, 4, 4);     /* 17 output blocks of dx */
}

static void test_bad_arguments(void **state)
{
    (void)state;
    if (!dhf_c1x1_supported())
        skip();
    dhf_c1x1 *c = NULL;
    assert_int_not_equal(dhf_c1x1_create(&c, 0, 16, 16, 4, 4), 0);
    assert_null(c);
    assert_non_null(strstr(dhf_err_msg(), "bad shape"));
    assert_int_equal(dhf_c1x1_create(&c, 1, 16, 16, 4, 4), 0);
    float *x = aligned_alloc(64, 2 * 16 * 16 * sizeof(float)), w[16 * 16] = { 0 };
    float *y = aligned_alloc(64, 16 * 16 * sizeof(float));
    assert_true(x && y);
    memset(x, 0, 2 * 16 * 16 * sizeof(float));
    double s[16];
    assert_int_not_equal(dhf_c1x1_forward(c, x, w, y, s, NULL), 0);
    assert_non_null(strstr(dhf_err_msg(), "sumsq"));
    assert_int_not_equal(dhf_c1x1_forward(c, x + 4, w, y, NULL, NULL), 0);
    assert_non_null(strstr(dhf_err_msg(), "64-byte aligned"));
    assert_int_not_equal(dhf_c1x1_backward_data(c, x, w, y + 1), 0);
    assert_non_null(strstr(dhf_err_msg(), "64-byte aligned"));
    dhf_c1x1_free(c);
    free(x);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_whole_tiles),
        cmocka_unit_test(test_forward_partial_blocks_and_tails),
        cmocka_unit_test(test_backward_data),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
