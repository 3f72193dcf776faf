/* test_dnnl_conv.c — the oneDNN blocked-layout convolutions (train/dnnl_conv.h) against
 * libtorch's conv2d and its autograd: forward, backward-data (grad of sum(out * G)
 * w.r.t. the input) and backward-weights, for 3x3 direct and winograd, 1x1 with a
 * channel count that is not a multiple of 16 and a plain 1x1; that padding channels
 * of outputs come back zero; that a second call with new weights re-reorders them;
 * and the refusals (bad shape, backward-data without its primitive). Prints the
 * oneDNN implementations chosen and the worst errors. Skips (77) without oneDNN.
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

#include "core/error.h"
#include "shim/torch_shim.h"
#include "engine/blocked.h"
#include "engine/dnnl_conv.h"

/* seeded N(0, 1) * scale into a new malloc'd buffer */
static float *randn_buf(uint64_t seed, const int64_t *shape, int ndim, float scale, size_t *n)
{
    dhf_tensor t = NULL;
    assert_int_equal(dhf_randn(seed, DHF_F32, shape, ndim, &t), DHF_OK);
    size_t numel = (size_t)dhf_numel(t);
    float *b = malloc(numel * sizeof *b);
    assert_non_null(b);
    assert_int_equal(dhf_to_buffer(t, DHF_F32, b, numel * sizeof *b), DHF_OK);
    dhf_free(t);
    for (size_t i = 0; i < numel; i++)
        b[i] *= scale;
    *n = numel;
    return b;
}

/* worst err / (atol + rtol * |want|); <= 1 passes */
static double check(const char *what, const float *got, const float *want, size_t n,
                    double atol, double rtol)
{
    double worst = 0, worst_abs = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        double r = e / (atol + rtol * fabs((double)want[i]));
        if (!(r <= worst)) { /* NaN counts as worst */
            worst = r, at = i;
        }
        if (e > worst_abs)
            worst_abs = e;
    }
    printf("    %-6s worst abs err %.3g, worst err/tol %.3g (at %zu: got %.6g want %.6g)\n", what,
           worst_abs, worst, at, n ? got[at] : 0.0, n ? want[at] : 0.0);
    return worst;
}

typedef struct {
    int N, C, O, H, W, k;
    dhf_dconv_algo algo;
    double rtol, atol;
} conv_case;

static void run_case(const conv_case *cc)
{
    const int N = cc->N, C = cc->C, O = cc->O, H = cc->H, W = cc->W, k = cc->k;
    const int64_t xs[4] = {N, C, H, W}, ys[4] = {N, O, H, W}, ws[4] = {O, C, k, k};
    size_t nx, ny, nw;
    float *x = randn_buf(11, xs, 4, 1.0f, &nx);
    float *g = randn_buf(13, ys, 4, 1.0f, &ny);
    float *w = randn_buf(12, ws, 4, 1.0f / sqrtf((float)(C * k * k)), &nw);

    /* reference: libtorch conv2d and autograd */
    float *y_ref = malloc(ny * sizeof(float)), *dx_ref = malloc(nx * sizeof(float));
    float *dw_ref = malloc(nw * sizeof(float));
    assert_true(y_ref && dx_ref && dw_ref);
    dhf_scope_begin();
    dhf_tensor tx, tw, tg, ty, tp, tl, gx, gw;
    assert_int_equal(dhf_from_buffer(x, DHF_F32, xs, 4, &tx), DHF_OK);
    assert_int_equal(dhf_from_buffer(w, DHF_F32, ws, 4, &tw), DHF_OK);
    assert_int_equal(dhf_from_buffer(g, DHF_F32, ys, 4, &tg), DHF_OK);
    assert_int_equal(dhf_set_requires_grad(tx, true), DHF_OK);
    assert_int_equal(dhf_set_requires_grad(tw, true), DHF_OK);
    assert_int_equal(dhf_conv2d(tx, tw, NULL, 1, 1, k / 2, k / 2, 1, &ty), DHF_OK);
    assert_int_equal(dhf_mul(ty, tg, &tp), DHF_OK);
    assert_int_equal(dhf_sum(tp, &tl), DHF_OK);
    assert_int_equal(dhf_backward(tl), DHF_OK);
    assert_int_equal(dhf_grad(tx, &gx), DHF_OK);
    assert_int_equal(dhf_grad(tw, &gw), DHF_OK);
    assert_non_null(gx);
    assert_non_null(gw);
    assert_int_equal(dhf_to_buffer(ty, DHF_F32, y_ref, ny * sizeof(float)), DHF_OK);
    assert_int_equal(dhf_to_buffer(gx, DHF_F32, dx_ref, nx * sizeof(float)), DHF_OK);
    assert_int_equal(dhf_to_buffer(gw, DHF_F32, dw_ref, nw * sizeof(float)), DHF_OK);
    assert_int_equal(dhf_scope_end(), DHF_OK);

    /* oneDNN on blocked buffers */
    dhf_dconv *c = NULL;
    int rc = dhf_dconv_create(&c, N, C, O, H, W, k, true, cc->algo);
    if (rc != 0)
        fail_msg("create: %s", dhf_err_msg());
    static const char *const algo_name[] = {"auto", "direct", "winograd"};
    printf("  N=%d C=%d O=%d H=%d W=%d k=%d %s: %s\n", N, C, O, H, W, k, algo_name[cc->algo],
           dhf_dconv_impl(c));
    const size_t bx = dhf_blk_numel(N, C, H, W), by = dhf_blk_numel(N, O, H, W);
    float *xb = malloc(bx * sizeof(float)), *dxb = malloc(bx * sizeof(float));
    float *yb = malloc(by * sizeof(float)), *gb = malloc(by * sizeof(float));
    float *y = malloc(ny * sizeof(float)), *dx = malloc(nx * sizeof(float));
    float *dw = malloc(nw * sizeof(float)), *w0 = calloc(nw, sizeof(float));
    assert_true(xb && dxb && yb && gb && y && dx && dw && w0);
    dhf_blk_pack(x, N, C, H, W, xb);
    dhf_blk_pack(g, N, O, H, W, gb);
    /* garbage everywhere in the outputs, padding channels included */
    for (size_t i = 0; i < by; i++)
        yb[i] = 1234.5f;
    for (size_t i = 0; i < bx; i++)
        dxb[i] = -777.0f;
    for (size_t i = 0; i < nw; i++)
        dw[i] = 99.0f;

    /* zero weights first: the second call must reorder the new weights again */
    if (dhf_dconv_forward(c, xb, w0, yb) != 0)
        fail_msg("forward: %s", dhf_err_msg());
    for (size_t i = 0; i < by; i++)
        assert_true(yb[i] == 0.0f);
    if (dhf_dconv_forward(c, xb, w, yb) != 0)
        fail_msg("forward: %s", dhf_err_msg());
    if (dhf_dconv_backward_data(c, gb, w, dxb) != 0)
        fail_msg("backward_data: %s", dhf_err_msg());
    if (dhf_dconv_backward_weights(c, xb, gb, dw) != 0)
        fail_msg("backward_weights: %s", dhf_err_msg());

    /* padding channels of the outputs: zero */
    const int64_t cpx = dhf_blk_cpad(C), cpy = dhf_blk_cpad(O);
    for (int64_t i = 0; i < N; i++)
        for (int64_t ch = C; ch < cpx; ch++)
            for (int64_t p = 0; p < (int64_t)H * W; p++)
                assert_true(dxb[((i * (cpx / 16) + ch / 16) * H * W + p) * 16 + ch % 16] == 0.0f);
    for (int64_t i = 0; i < N; i++)
        for (int64_t ch = O; ch < cpy; ch++)
            for (int64_t p = 0; p < (int64_t)H * W; p++)
                assert_true(yb[((i * (cpy / 16) + ch / 16) * H * W + p) * 16 + ch % 16] == 0.0f);

    dhf_blk_unpack(yb, N, O, H, W, y);
    dhf_blk_unpack(dxb, N, C, H, W, dx);
    double e1 = check("fwd", y, y_ref, ny, cc->atol, cc->rtol);
    double e2 = check("bwd_d", dx, dx_ref, nx, cc->atol, cc->rtol);
    double e3 = check("bwd_w", dw, dw_ref, nw, cc->atol, cc->rtol);
    assert_true(e1 <= 1.0);
    assert_true(e2 <= 1.0);
    assert_true(e3 <= 1.0);

    dhf_dconv_free(c);
    free(x), free(g), free(w), free(y_ref), free(dx_ref), free(dw_ref);
    free(xb), free(dxb), free(yb), free(gb), free(y), free(dx), free(dw), free(w0);
}

static void k3_direct(void **state)
{
    conv_case cc = {3, 32, 32, 12, 12, 3, DHF_DCONV_DIRECT, 1e-4, 1e-4};
    run_case(&cc);
}

/* winograd: 1e-3 relative to the values' scale (|want| and 1, the outputs are O(1)) */
static void k3_winograd(void **state)
{
    conv_case cc = {3, 32, 32, 12, 12, 3, DHF_DCONV_WINOGRAD, 1e-3, 1e-3};
    run_case(&cc);
}

static void k3_auto_padded(void **state)
{
    conv_case cc = {2, 20, 24, 7, 7, 3, DHF_DCONV_AUTO, 1e-3, 1e-3};
    run_case(&cc);
}

static void k1_padded(void **state)
{
    conv_case cc = {2, 40, 48, 5, 5, 1, DHF_DCONV_AUTO, 1e-4, 1e-4};
    run_case(&cc);
}

static void k1_plain(void **state)
{
    conv_case cc = {4, 32, 64, 16, 16, 1, DHF_DCONV_AUTO, 1e-4, 1e-4};
    run_case(&cc);
}

static void refusals(void **state)
{
    dhf_dconv *c = (dhf_dconv *)&c;
    assert_int_equal(dhf_dconv_create(&c, 1, 16, 16, 8, 8, 5, true, DHF_DCONV_AUTO), -1);
    assert_null(c);
    assert_non_null(strstr(dhf_err_msg(), "k=5"));
    assert_int_equal(dhf_dconv_create(&c, 1, 16, 16, 8, 8, 3, false, DHF_DCONV_AUTO), 0);
    assert_non_null(strstr(dhf_dconv_impl(c), "bwd_d (none)"));
    float *a = calloc(16 * 64, sizeof(float)), *b = calloc(16 * 64, sizeof(float));
    float *w = calloc(16 * 16 * 9, sizeof(float));
    assert_int_equal(dhf_dconv_backward_data(c, a, w, b), -1);
    assert_non_null(strstr(dhf_err_msg(), "need_bwd_data"));
    assert_int_equal(dhf_dconv_forward(c, NULL, w, b), -1);
    assert_non_null(strstr(dhf_err_msg(), "src is NULL"));
    assert_int_equal(dhf_dconv_forward(c, a, w, b), 0);
    dhf_dconv_free(c);
    dhf_dconv_free(NULL);
    free(a), free(b), free(w);
}

int main(void)
{
    if (!dhf_dconv_available()) {
        printf("test_dnnl_conv: built without oneDNN; skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(k3_direct),     cmocka_unit_test(k3_winograd),
        cmocka_unit_test(k3_auto_padded), cmocka_unit_test(k1_padded),
        cmocka_unit_test(k1_plain),      cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
