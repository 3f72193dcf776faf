/* test_inference_kernels.c — the extractor's channels-last kernels against their
 * references: dnnl_iconv (3x3 with bias, a stride-2 convolution with the VAE's
 * asymmetric padding, a 1x1 accumulating into its destination, bfloat16) against
 * libtorch's conv2d, and pack/unpack giving back the OIHW weights bit for bit;
 * groupnorm_nhwc (with and without SiLU, activations whose mean is 10^4 times their
 * spread, bfloat16) against a double-precision loop written here; attention_rows and
 * softmax_rows against a double-precision softmax(q k^T) v, with block sizes that
 * split the queries unevenly and key counts that are not a multiple of 16. Prints the
 * worst errors. Skips (77) without oneDNN.
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
#include "engine/attention_rows.h"
#include "engine/dnnl_iconv.h"
#include "engine/groupnorm_nhwc.h"
#include "engine/scalar_math.h"
#include "shim/torch_shim.h"

/* seeded N(0, 1) * scale + shift, n values, into a new malloc'd buffer */
static float *randn_buf(uint64_t seed, size_t n, float scale, float shift)
{
    int64_t shape[1] = {(int64_t)n};
    dhf_tensor t = NULL;
    assert_int_equal(dhf_randn(seed, DHF_F32, shape, 1, &t), DHF_OK);
    float *b = malloc(n * sizeof *b);
    assert_non_null(b);
    assert_int_equal(dhf_to_buffer(t, DHF_F32, b, n * sizeof *b), DHF_OK);
    dhf_free(t);
    for (size_t i = 0; i < n; i++)
        b[i] = b[i] * scale + shift;
    return b;
}

/* worst |got - want| / (atol + rtol |want|); <= 1 passes */
static double check(const char *what, const float *got, const double *want, size_t n,
                    double atol, double rtol)
{
    double worst = 0, worst_abs = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        double r = e / (atol + rtol * fabs(want[i]));
        if (!(r <= worst))
            worst = r, at = i;
        if (e > worst_abs)
            worst_abs = e;
    }
    printf("    %-28s worst abs err %.3g, err/tol %.3g (at %zu: got %.7g want %.7g)\n", what,
           worst_abs, worst, at, n ? got[at] : 0.0, n ? want[at] : 0.0);
    return worst;
}

/* ---- dnnl_iconv against libtorch's conv2d ------------------------------------------ */

typedef struct {
    int64_t N, C, O, H, W;
    int k, stride, pt, pl, pb, pr;
    bool bias, accumulate, bf16;
    double atol, rtol;
} conv_case;

static void run_conv(const conv_case *cc)
{
    dhf_iconv_shape s = {.N = cc->N, .C = cc->C, .O = cc->O, .H = cc->H, .W = cc->W,
                         .k = cc->k, .stride = cc->stride, .pad_t = cc->pt, .pad_l = cc->pl,
                         .pad_b = cc->pb, .pad_r = cc->pr,
                         .dtype = cc->bf16 ? DHF_DMM_BF16 : DHF_DMM_F32, .bias = cc->bias,
                         .accumulate = cc->accumulate};
    int64_t OH = dhf_iconv_out_h(&s), OW = dhf_iconv_out_w(&s);
    size_t nx = (size_t)(cc->N * cc->C * cc->H * cc->W), nw = (size_t)(cc->O * cc->C * cc->k * cc->k);
    size_t ny = (size_t)(cc->N * cc->O * OH * OW);
    float *x = randn_buf(1, nx, 1.0f, 0.0f);   /* NCHW */
    float *w = randn_buf(2, nw, 1.0f / sqrtf((float)(cc->C * cc->k * cc->k)), 0.0f);
    float *b = randn_buf(3, (size_t)cc->O, 0.5f, 0.0f);
    float *acc = randn_buf(4, ny, 1.0f, 0.0f); /* NCHW */
    if (cc->bf16) {   /* the reference sees the same bf16-rounded inputs */
        for (size_t i = 0; i < nx; i++) x[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(x[i]));
        for (size_t i = 0; i < nw; i++) w[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(w[i]));
        for (int64_t i = 0; i < cc->O; i++) b[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(b[i]));
        for (size_t i = 0; i < ny; i++) acc[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(acc[i]));
    }

    /* reference: F.pad then conv2d, in libtorch (float32) */
    double *want = malloc(ny * sizeof *want);
    assert_non_null(want);
    {
        int64_t xs[4] = {cc->N, cc->C, cc->H, cc->W}, ws[4] = {cc->O, cc->C, cc->k, cc->k};
        int64_t bs[1] = {cc->O}, pads[4] = {cc->pl, cc->pr, cc->pt, cc->pb};
        dhf_tensor tx = NULL, tw = NULL, tb = NULL, tp = NULL, ty = NULL;
        assert_int_equal(dhf_from_buffer(x, DHF_F32, xs, 4, &tx), DHF_OK);
        assert_int_equal(dhf_from_buffer(w, DHF_F32, ws, 4, &tw), DHF_OK);
        assert_int_equal(dhf_from_buffer(b, DHF_F32, bs, 1, &tb), DHF_OK);
        assert_int_equal(dhf_pad(tx, pads, 4, 0.0, &tp), DHF_OK);
        assert_int_equal(dhf_conv2d(tp, tw, cc->bias ? tb : NULL, cc->stride, cc->stride, 0, 0,
                                    1, &ty), DHF_OK);
        float *y = malloc(ny * sizeof *y);
        assert_non_null(y);
        assert_int_equal(dhf_to_buffer(ty, DHF_F32, y, ny * sizeof *y), DHF_OK);
        for (size_t i = 0; i < ny; i++)
            want[i] = (double)y[i] + (cc->accumulate ? (double)acc[i] : 0.0);
        free(y);
        dhf_free(tx), dhf_free(tw), dhf_free(tb), dhf_free(tp), dhf_free(ty);
    }

    /* ours: NHWC buffers of the dtype */
    size_t el = cc->bf16 ? 2 : 4;
    char *xh = malloc(nx * el), *wh = malloc(nw * el), *bh = malloc((size_t)cc->O * el);
    char *yh = malloc(ny * el), *w_back = malloc(nw * el);
    assert_true(xh && wh && bh && yh && w_back);
#define PUT(buf, i, v) (cc->bf16 ? (void)(((uint16_t *)(buf))[i] = dhf_f32_to_bf16(v)) \
                                 : (void)(((float *)(buf))[i] = (v)))
#define GET(buf, i) (cc->bf16 ? dhf_bf16_to_f32(((uint16_t *)(buf))[i]) : ((float *)(buf))[i])
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t c = 0; c < cc->C; c++)
            for (int64_t p = 0; p < cc->H * cc->W; p++)
                PUT(xh, (n * cc->H * cc->W + p) * cc->C + c, x[(n * cc->C + c) * cc->H * cc->W + p]);
    for (size_t i = 0; i < nw; i++)
        PUT(wh, i, w[i]);
    for (int64_t i = 0; i < cc->O; i++)
        PUT(bh, i, b[i]);
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t o = 0; o < cc->O; o++)
            for (int64_t p = 0; p < OH * OW; p++)
                PUT(yh, (n * OH * OW + p) * cc->O + o, acc[(n * cc->O + o) * OH * OW + p]);
    size_t bytes = 0;
    if (dhf_iconv_packed_bytes(&s, &bytes) != 0) {
        /* bfloat16 without AVX512-BF16: oneDNN has only its reference kernel */
        printf("    %s: %s (skipped)\n", cc->bf16 ? "bf16" : "f32", dhf_err_msg());
        assert_true(cc->bf16);
        goto out;
    }
    void *packed = malloc(bytes);
    assert_non_null(packed);
    assert_int_equal(dhf_iconv_pack(&s, wh, packed), 0);
    assert_int_equal(dhf_iconv_forward(&s, xh, packed, bh, yh), 0);
    assert_int_equal(dhf_iconv_unpack(&s, packed, w_back), 0);
    assert_memory_equal(w_back, wh, nw * el);   /* a reorder there and back is exact */
    float *got = malloc(ny * sizeof *got);
    assert_non_null(got);
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t o = 0; o < cc->O; o++)
            for (int64_t p = 0; p < OH * OW; p++)
                got[(n * cc->O + o) * OH * OW + p] = GET(yh, (n * OH * OW + p) * cc->O + o);
#undef PUT
#undef GET
    char what[96];
    snprintf(what, sizeof what, "%s k%d s%d %s", dhf_iconv_impl(&s), cc->k, cc->stride,
             cc->bf16 ? "bf16" : "f32");
    assert_true(check(what, got, want, ny, cc->atol, cc->rtol) <= 1.0);
    free(got);
    free(packed);
out:
    free(x), free(w), free(b), free(acc), free(want);
    free(xh), free(wh), free(bh), free(yh), free(w_back);
}

static void conv_3x3_bias(void **state)
{
    (void)state;
    conv_case cc = {2, 32, 48, 9, 7, 3, 1, 1, 1, 1, 1, true, false, false, 1e-5, 1e-4};
    run_conv(&cc);
}

static void conv_stride2_asymmetric(void **state)
{
    (void)state;
    /* the VAE's Downsample2D: F.pad(x, (0, 1, 0, 1)), then 3x3 stride 2, no padding */
    conv_case cc = {1, 16, 16, 10, 12, 3, 2, 0, 0, 1, 1, true, false, false, 1e-5, 1e-4};
    run_conv(&cc);
}

static void conv_1x1_accumulate(void **state)
{
    (void)state;
    conv_case cc = {1, 40, 24, 1, 77, 1, 1, 0, 0, 0, 0, false, true, false, 1e-5, 1e-4};
    run_conv(&cc);
}

static void conv_bf16(void **state)
{
    (void)state;
    /* bf16 output rounding: 2^-8 relative, on sums of 288 products */
    conv_case cc = {1, 32, 32, 8, 8, 3, 1, 1, 1, 1, 1, true, true, true, 2e-2, 1e-2};
    run_conv(&cc);
}

/* ---- groupnorm_nhwc against a double loop ------------------------------------------ */

static void run_gn(int64_t N, int64_t P, int64_t C, int G, bool silu, bool bf16, float mean,
                   float spread, double atol, double rtol)
{
    size_t n = (size_t)(N * P * C);
    float *x = randn_buf(5, n, spread, mean);   /* [N, P, C] */
    float *gm = randn_buf(6, (size_t)C, 0.2f, 1.0f), *bt = randn_buf(7, (size_t)C, 0.2f, 0.0f);
    if (bf16) {
        for (size_t i = 0; i < n; i++) x[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(x[i]));
        for (int64_t i = 0; i < C; i++) gm[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(gm[i]));
        for (int64_t i = 0; i < C; i++) bt[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(bt[i]));
    }
    double *want = malloc(n * sizeof *want);
    assert_non_null(want);
    int64_t cpg = C / G;
    for (int64_t b = 0; b < N; b++)
        for (int g = 0; g < G; g++) {
            double s = 0, ss = 0, cnt = (double)(P * cpg);
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = g * cpg; c < (g + 1) * cpg; c++)
                    s += x[(b * P + p) * C + c];
            double m = s / cnt;
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
                    double d = x[(b * P + p) * C + c] - m;
                    ss += d * d;
                }
            double rstd = 1.0 / sqrt(ss / cnt + 1e-5);
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
                    size_t i = (size_t)((b * P + p) * C + c);
                    double v = (x[i] - m) * rstd * gm[c] + bt[c];
                    want[i] = silu ? v / (1.0 + exp(-v)) : v;
                }
        }
    dhf_gn_shape s = {.N = N, .P = P, .C = C, .G = G, .eps = 1e-5, .silu = silu, .bf16 = bf16};
    float *got = malloc(n * sizeof *got);
    assert_non_null(got);
    if (bf16) {
        uint16_t *xh = malloc(n * 2), *yh = malloc(n * 2), *gh = malloc((size_t)C * 2),
                 *bh = malloc((size_t)C * 2);
        assert_true(xh && yh && gh && bh);
        for (size_t i = 0; i < n; i++) xh[i] = dhf_f32_to_bf16(x[i]);
        for (int64_t i = 0; i < C; i++) gh[i] = dhf_f32_to_bf16(gm[i]), bh[i] = dhf_f32_to_bf16(bt[i]);
        assert_int_equal(dhf_gn_nhwc_forward(&s, xh, gh, bh, yh), 0);
        for (size_t i = 0; i < n; i++) got[i] = dhf_bf16_to_f32(yh[i]);
        free(xh), free(yh), free(gh), free(bh);
    } else {
        assert_int_equal(dhf_gn_nhwc_forward(&s, x, gm, bt, got), 0);
    }
    char what[96];
    snprintf(what, sizeof what, "GN%s %s mean %g spread %g", silu ? "+SiLU" : "",
             bf16 ? "bf16" : "f32", mean, spread);
    assert_true(check(what, got, want, n, atol, rtol) <= 1.0);
    free(x), free(gm), free(bt), free(want), free(got);
}

static void groupnorm(void **state)
{
    (void)state;
    run_gn(2, 37, 64, 8, false, false, 0.0f, 1.0f, 1e-5, 1e-5);
    run_gn(1, 130, 96, 32, true, false, 3.0f, 2.0f, 1e-5, 1e-5);
    /* one-pass E[x^2] - E[x]^2 in float would lose every digit here */
    run_gn(1, 64, 32, 4, false, false, 100.0f, 0.01f, 1e-3, 1e-3);
    run_gn(1, 50, 64, 16, true, true, 1.0f, 1.0f, 1e-2, 1e-2);
    /* a bad shape is refused */
    dhf_gn_shape bad = {.N = 1, .P = 4, .C = 30, .G = 4};
    float buf[120] = {0};
    assert_int_equal(dhf_gn_nhwc_forward(&bad, buf, buf, buf, buf), -1);
    dhf_err_clear();
}

/* ---- attention_rows against a double softmax(q k^T) v ----------------------------- */

static void run_attn(int64_t H, int64_t N, int64_t M, int64_t d, int64_t dv, size_t block,
                     bool bf16, double atol, double rtol)
{
    size_t nq = (size_t)(H * N * d), nk = (size_t)(H * d * M), nv = (size_t)(H * M * dv);
    size_t no = (size_t)(H * N * dv);
    float *q = randn_buf(8, nq, 1.0f, 0.0f), *kt = randn_buf(9, nk, 1.0f, 0.0f);
    float *v = randn_buf(10, nv, 1.0f, 0.0f);
    if (bf16) {
        for (size_t i = 0; i < nq; i++) q[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(q[i]));
        for (size_t i = 0; i < nk; i++) kt[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(kt[i]));
        for (size_t i = 0; i < nv; i++) v[i] = dhf_bf16_to_f32(dhf_f32_to_bf16(v[i]));
    }
    double *want = malloc(no * sizeof *want), *sc = malloc((size_t)M * sizeof *sc);
    assert_true(want && sc);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < N; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < M; j++) {
                double a = 0;
                for (int64_t c = 0; c < d; c++)
                    a += (double)q[(h * N + i) * d + c] * kt[(h * d + c) * M + j];
                sc[j] = a;
                mx = a > mx ? a : mx;
            }
            for (int64_t j = 0; j < M; j++)
                sum += sc[j] = exp(sc[j] - mx);
            for (int64_t c = 0; c < dv; c++) {
                double a = 0;
                for (int64_t j = 0; j < M; j++)
                    a += sc[j] / sum * v[(h * M + j) * dv + c];
                want[(h * N + i) * dv + c] = a;
            }
        }
    dhf_attn_shape s = {.heads = H, .N = N, .M = M, .d = d, .dv = dv,
                        .dtype = bf16 ? DHF_DMM_BF16 : DHF_DMM_F32, .block_bytes = block};
    float *got = malloc(no * sizeof *got);
    assert_non_null(got);
    int rc;
    if (bf16) {
        uint16_t *qh = malloc(nq * 2), *kh = malloc(nk * 2), *vh = malloc(nv * 2),
                 *oh = malloc(no * 2);
        assert_true(qh && kh && vh && oh);
        for (size_t i = 0; i < nq; i++) qh[i] = dhf_f32_to_bf16(q[i]);
        for (size_t i = 0; i < nk; i++) kh[i] = dhf_f32_to_bf16(kt[i]);
        for (size_t i = 0; i < nv; i++) vh[i] = dhf_f32_to_bf16(v[i]);
        rc = dhf_attn_rows_forward(&s, qh, kh, vh, oh);
        for (size_t i = 0; rc == 0 && i < no; i++) got[i] = dhf_bf16_to_f32(oh[i]);
        free(qh), free(kh), free(vh), free(oh);
    } else {
        rc = dhf_attn_rows_forward(&s, q, kt, v, got);
    }
    if (rc != 0) {
        printf("    attention %s: %s (skipped)\n", bf16 ? "bf16" : "f32", dhf_err_msg());
        assert_true(bf16);   /* only bfloat16 may lack a kernel (no AVX512-BF16) */
        dhf_err_clear();
    } else {
        char what[96];
        snprintf(what, sizeof what, "attention H%lld N%lld M%lld d%lld %s", (long long)H,
                 (long long)N, (long long)M, (long long)d, bf16 ? "bf16" : "f32");
        assert_true(check(what, got, want, no, atol, rtol) <= 1.0);
    }
    free(q), free(kt), free(v), free(want), free(sc), free(got);
}

static void attention(void **state)
{
    (void)state;
    /* blocks of 13 query rows over 40: three full blocks and one of 1 */
    run_attn(3, 40, 77, 40, 40, 13 * 77 * 4, false, 1e-5, 1e-4);
    run_attn(2, 64, 130, 16, 24, 1 << 20, false, 1e-5, 1e-4);
    run_attn(1, 33, 50, 8, 8, 5 * 50 * 2, true, 2e-2, 2e-2);
}

static void softmax(void **state)
{
    (void)state;
    /* rows of 19 (a 16-lane body and a tail), one with a huge spread */
    float x[3 * 19];
    double want[3 * 19];
    for (int r = 0; r < 3; r++) {
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < 19; c++) {
            x[r * 19 + c] = (float)((r == 2 ? 40.0 : 1.0) * sin(0.7 * c + r));
            mx = x[r * 19 + c] > mx ? x[r * 19 + c] : mx;
        }
        for (int c = 0; c < 19; c++)
            s += want[r * 19 + c] = exp(x[r * 19 + c] - mx);
        for (int c = 0; c < 19; c++)
            want[r * 19 + c] /= s;
    }
    assert_int_equal(dhf_softmax_rows(x, 3, 19, DHF_DMM_F32), 0);
    assert_true(check("softmax rows f32", x, want, 3 * 19, 1e-7, 1e-6) <= 1.0);
}

int main(void)
{
    if (!dhf_iconv_available()) {
        printf("dhf built without oneDNN: skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_3x3_bias),     cmocka_unit_test(conv_stride2_asymmetric),
        cmocka_unit_test(conv_1x1_accumulate), cmocka_unit_test(conv_bf16),
        cmocka_unit_test(groupnorm),         cmocka_unit_test(attention),
        cmocka_unit_test(softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
