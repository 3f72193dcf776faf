/* test_shim.c — the libtorch shim's contract: errors come back as statuses with
 * messages (never aborts), scopes free what they own, autograd matches finite
 * differences, AdamW matches the PyTorch update rule computed by hand.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "shim/torch_shim.h"

#define OK(expr) assert_int_equal((expr), DHF_OK)

static dhf_tensor from_f32(const float *v, const int64_t *shape, int ndim)
{
    dhf_tensor t = NULL;
    OK(dhf_from_buffer(v, DHF_F32, shape, ndim, &t));
    return t;
}

static void test_shape_mismatch_is_an_error(void **state)
{
    (void)state;
    long live = dhf_live_tensors();
    const int64_t s23[2] = {2, 3}, s45[2] = {4, 5};
    dhf_tensor a = NULL, b = NULL, c = (dhf_tensor)0x1;
    OK(dhf_zeros(DHF_F32, (dhf_device){DHF_CPU, 0}, s23, 2, &a));
    OK(dhf_zeros(DHF_F32, (dhf_device){DHF_CPU, 0}, s45, 2, &b));
    assert_int_equal(dhf_matmul(a, b, &c), DHF_ERR_TORCH);
    assert_ptr_equal(c, (dhf_tensor)0x1); /* out untouched on failure */
    assert_non_null(strstr(dhf_last_error(), "dhf_matmul"));
    assert_true(strlen(dhf_last_error()) > 20);
    assert_int_equal(dhf_add(a, b, &c), DHF_ERR_TORCH);
    assert_non_null(strstr(dhf_last_error(), "size"));
    /* conv2d with a weight of the wrong rank */
    assert_int_equal(dhf_conv2d(a, b, NULL, 1, 1, 0, 0, 1, &c), DHF_ERR_TORCH);
    /* NULL handles and bad ndim are argument errors, not crashes */
    assert_int_equal(dhf_relu(NULL, &c), DHF_ERR_ARG);
    assert_int_equal(dhf_zeros(DHF_F32, (dhf_device){DHF_CPU, 0}, s23, 99, &c), DHF_ERR_ARG);
    assert_int_equal(dhf_scope_end(), DHF_ERR_STATE);
    assert_int_equal(dhf_inference_end(), DHF_ERR_STATE);
    float buf[3];
    assert_int_equal(dhf_to_buffer(a, DHF_F32, buf, sizeof buf), DHF_ERR_ARG);
    assert_non_null(strstr(dhf_last_error(), "24"));
    dhf_free(a);
    dhf_free(b);
    assert_int_equal(dhf_live_tensors(), live);
}

static void test_scoped_loop_leaks_nothing(void **state)
{
    (void)state;
    long live = dhf_live_tensors();
    const int64_t s[2] = {4, 4};
    dhf_tensor acc = NULL;
    OK(dhf_zeros(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 2, &acc));
    for (int i = 0; i < 10000; i++) {
        dhf_scope_begin();
        dhf_tensor x = NULL, y = NULL, z = NULL;
        OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 2, &x));
        OK(dhf_mul_scalar(x, 0.5, &y));
        OK(dhf_matmul(y, x, &z));
        OK(dhf_add_(acc, z));
        if (i % 3 == 0)
            dhf_free(y); /* freeing a scoped handle early is allowed */
        assert_true(dhf_live_tensors() <= live + 4);
        OK(dhf_scope_end());
    }
    assert_int_equal(dhf_live_tensors(), live + 1);
    /* every element of acc = 10000 * (4 * 0.5) */
    assert_float_equal(dhf_item(acc), 20000.0, 1e-3);

    /* keep moves a handle to the parent scope, or out of scoping altogether */
    dhf_tensor kept = NULL, inner_kept = NULL;
    dhf_scope_begin();
    dhf_scope_begin();
    OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 2, &inner_kept));
    OK(dhf_keep(inner_kept));
    OK(dhf_scope_end());
    assert_int_equal(dhf_live_tensors(), live + 2); /* survived the inner scope */
    OK(dhf_scope_end());
    assert_int_equal(dhf_live_tensors(), live + 1); /* freed by the outer one */
    dhf_scope_begin();
    OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 2, &kept));
    OK(dhf_keep(kept));
    OK(dhf_scope_end());
    assert_int_equal(dhf_live_tensors(), live + 2);
    dhf_free(kept);
    dhf_free(acc);
    assert_int_equal(dhf_live_tensors(), live);
}

/* f(x, w) = sum(softmax(x @ w, 1) * log(1 + exp(x) ...)) — a small composite. */
static double composite(dhf_tensor x, dhf_tensor w, dhf_tensor *loss_out)
{
    dhf_tensor xw, sm, gx, sq, prod, s, ln;
    OK(dhf_matmul(x, w, &xw));            /* [3, 4] */
    OK(dhf_softmax(xw, 1, &sm));
    OK(dhf_gelu(x, &gx));                 /* [3, 2] */
    OK(dhf_sum_dim(gx, 1, true, &sq));    /* [3, 1] */
    OK(dhf_mul(sm, sq, &prod));           /* [3, 4] */
    OK(dhf_silu(prod, &s));
    OK(dhf_sum(s, &ln));
    if (loss_out)
        *loss_out = ln;
    return dhf_item(ln);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    const int64_t sx[2] = {3, 2}, sw[2] = {2, 4};
    double xv[6] = {0.3, -1.2, 0.7, 0.25, -0.4, 1.1};
    double wv[8] = {0.5, -0.3, 0.8, 0.1, -0.6, 0.9, 0.2, -0.7};
    dhf_scope_begin();
    dhf_tensor x, w, loss, gx, gw;
    OK(dhf_from_buffer(xv, DHF_F64, sx, 2, &x));
    OK(dhf_from_buffer(wv, DHF_F64, sw, 2, &w));
    OK(dhf_set_requires_grad(x, true));
    OK(dhf_set_requires_grad(w, true));
    composite(x, w, &loss);
    OK(dhf_backward(loss));
    OK(dhf_grad(x, &gx));
    OK(dhf_grad(w, &gw));
    assert_non_null(gx);
    double gxv[6], gwv[8];
    OK(dhf_to_buffer(gx, DHF_F64, gxv, sizeof gxv));
    OK(dhf_to_buffer(gw, DHF_F64, gwv, sizeof gwv));

    bool prev = true;
    OK(dhf_set_grad_enabled(false, &prev));
    assert_true(prev);
    const double h = 1e-6;
    for (int i = 0; i < 14; i++) {
        double *v = i < 6 ? xv : wv;
        int k = i < 6 ? i : i - 6;
        double keep = v[k];
        dhf_tensor xp, wp;
        v[k] = keep + h;
        OK(dhf_from_buffer(xv, DHF_F64, sx, 2, &xp));
        OK(dhf_from_buffer(wv, DHF_F64, sw, 2, &wp));
        double fp = composite(xp, wp, NULL);
        v[k] = keep - h;
        OK(dhf_from_buffer(xv, DHF_F64, sx, 2, &xp));
        OK(dhf_from_buffer(wv, DHF_F64, sw, 2, &wp));
        double fm = composite(xp, wp, NULL);
        v[k] = keep;
        double fd = (fp - fm) / (2 * h);
        double an = i < 6 ? gxv[k] : gwv[k];
        assert_float_equal(an, fd, 1e-7 + 1e-6 * fabs(fd));
    }
    OK(dhf_set_grad_enabled(true, &prev));
    assert_false(prev);
    /* zero_grad keeps a zero gradient; clear_grad drops it */
    OK(dhf_zero_grad(x));
    dhf_tensor g0;
    OK(dhf_grad(x, &g0));
    double m = -1;
    OK(dhf_max_all(g0, &m));
    assert_float_equal(m, 0.0, 0.0);
    OK(dhf_clear_grad(x));
    OK(dhf_grad(x, &g0));
    assert_null(g0);
    OK(dhf_scope_end());
}

/* Three AdamW steps with hand-applied PyTorch formulas, weight decay on. */
static void test_adamw_matches_update_rule(void **state)
{
    (void)state;
    const int64_t s[1] = {3};
    double p[3] = {0.5, -1.0, 2.0};
    const double grads[3][3] = {{0.1, -0.2, 0.3}, {-0.05, 0.4, 0.0}, {0.2, 0.2, -1.0}};
    dhf_adamw_hparams hp = {0.01, 0.9, 0.999, 1e-8, 0.1};
    double m[3] = {0}, v[3] = {0};

    dhf_scope_begin();
    dhf_tensor param, ea, eas;
    OK(dhf_from_buffer(p, DHF_F64, s, 1, &param));
    OK(dhf_zeros(DHF_F64, (dhf_device){DHF_CPU, 0}, s, 1, &ea));
    OK(dhf_zeros(DHF_F64, (dhf_device){DHF_CPU, 0}, s, 1, &eas));
    OK(dhf_set_requires_grad(param, true));
    for (int step = 1; step <= 3; step++) {
        /* loss = sum(param * g) gives grad == g exactly */
        dhf_tensor g, prod, loss;
        OK(dhf_from_buffer(grads[step - 1], DHF_F64, s, 1, &g));
        OK(dhf_zero_grad(param));
        OK(dhf_mul(param, g, &prod));
        OK(dhf_sum(prod, &loss));
        OK(dhf_backward(loss));
        OK(dhf_adamw_step(&param, &ea, &eas, 1, step, &hp));
        double bc1 = 1 - pow(hp.beta1, step), bc2 = 1 - pow(hp.beta2, step);
        for (int i = 0; i < 3; i++) {
            double gi = grads[step - 1][i];
            p[i] *= 1 - hp.lr * hp.weight_decay;
            m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * gi;
            v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * gi * gi;
            p[i] -= hp.lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + hp.eps);
        }
        double got[3], gm[3], gv[3];
        OK(dhf_to_buffer(param, DHF_F64, got, sizeof got));
        OK(dhf_to_buffer(ea, DHF_F64, gm, sizeof gm));
        OK(dhf_to_buffer(eas, DHF_F64, gv, sizeof gv));
        if (step == 1) {
            /* by hand: decay 0.5*(1-0.01*0.1) = 0.4995; m_hat = 0.1, v_hat = 0.01,
             * update = 0.01 * 0.1 / (0.1 + 1e-8) = 0.009999999000000100 */
            assert_float_equal(got[0], 0.4995 - 0.0099999990000001, 1e-15);
        }
        for (int i = 0; i < 3; i++) {
            assert_float_equal(got[i], p[i], 1e-14);
            assert_float_equal(gm[i], m[i], 1e-15);
            assert_float_equal(gv[i], v[i], 1e-15);
        }
    }
    assert_int_equal(dhf_adamw_step(&param, &ea, &eas, 1, 0, &hp), DHF_ERR_ARG);
    OK(dhf_scope_end());
}

static void test_ops_against_known_values(void **state)
{
    (void)state;
    dhf_scope_begin();
    /* bilinear, align_corners false: 2 -> 4 upsampling of [0, 1] gives
     * src = (d+0.5)/2-0.5 -> [-0.25->0, 0.25, 0.75, 1.25->1(clamped)] */
    const float row[2] = {0.f, 1.f};
    const int64_t s1[4] = {1, 1, 1, 2};
    dhf_tensor x = from_f32(row, s1, 4), up;
    OK(dhf_interpolate(x, 1, 4, DHF_INTERP_BILINEAR, false, &up));
    float got[4];
    OK(dhf_to_buffer(up, DHF_F32, got, sizeof got));
    const float want[4] = {0.f, 0.25f, 0.75f, 1.f};
    for (int i = 0; i < 4; i++)
        assert_float_equal(got[i], want[i], 1e-7);

    /* in-place softmax equals softmax */
    const float v[6] = {1, 2, 3, -1, 0, 5};
    const int64_t s23[2] = {2, 3};
    dhf_tensor a = from_f32(v, s23, 2), sm, d;
    OK(dhf_softmax(a, 1, &sm));
    OK(dhf_clone(a, &d));
    OK(dhf_softmax_(d, 1));
    double diff = 1;
    OK(dhf_max_abs_diff(sm, d, &diff));
    assert_true(diff < 1e-7);

    /* quick_gelu(1) = 1*sigmoid(1.702); gelu exact(1) = 0.841344746 */
    const float one = 1.f;
    const int64_t s0[1] = {1};
    dhf_tensor o = from_f32(&one, s0, 1), q, g, gt;
    OK(dhf_quick_gelu(o, &q));
    OK(dhf_gelu(o, &g));
    OK(dhf_gelu_tanh(o, &gt));
    assert_float_equal(dhf_item(q), 1.0 / (1.0 + exp(-1.702)), 1e-6);
    assert_float_equal(dhf_item(g), 0.8413447460685429, 1e-6);
    assert_true(fabs(dhf_item(gt) - dhf_item(g)) > 1e-5); /* they differ */

    /* cross entropy of logits [[0, ln 3]] with target 1: -log(3/4) */
    const float lg[2] = {0.f, (float)log(3.0)};
    const int64_t s12[2] = {1, 2};
    const int64_t tgt = 1, s1d[1] = {1};
    dhf_tensor L = from_f32(lg, s12, 2), T, ce;
    OK(dhf_from_buffer(&tgt, DHF_I64, s1d, 1, &T));
    OK(dhf_cross_entropy(L, T, &ce));
    assert_float_equal(dhf_item(ce), -log(0.75), 1e-6);

    /* dtype round trip through f16 and bf16 of exactly representable values */
    const float vals[3] = {1.5f, -2.25f, 1024.f};
    const int64_t s3[1] = {3};
    dhf_tensor f = from_f32(vals, s3, 1), h, back;
    OK(dhf_to_dtype(f, DHF_F16, &h));
    assert_int_equal(dhf_get_dtype(h), DHF_F16);
    OK(dhf_to_dtype(h, DHF_F32, &back));
    OK(dhf_to_buffer(back, DHF_F32, got, 3 * sizeof(float)));
    for (int i = 0; i < 3; i++)
        assert_float_equal(got[i], vals[i], 0);

    /* seeded draws are reproducible and independent of the global generator */
    dhf_tensor r1, r2;
    OK(dhf_randn(42, DHF_F32, s3, 1, &r1));
    OK(dhf_manual_seed(7));
    OK(dhf_randn(42, DHF_F32, s3, 1, &r2));
    OK(dhf_max_abs_diff(r1, r2, &diff));
    assert_float_equal(diff, 0.0, 0.0);

    /* causal mask and describe */
    dhf_tensor sc;
    const int64_t s33[2] = {3, 3};
    OK(dhf_zeros(DHF_F32, (dhf_device){DHF_CPU, 0}, s33, 2, &sc));
    OK(dhf_causal_mask_(sc));
    float m9[9];
    OK(dhf_to_buffer(sc, DHF_F32, m9, sizeof m9));
    assert_true(isinf(m9[1]) && isinf(m9[2]) && isinf(m9[5]) && m9[3] == 0.f && m9[4] == 0.f);
    char desc[64];
    dhf_describe(sc, desc, sizeof desc);
    assert_string_equal(desc, "[3, 3] f32 cpu");
    dhf_device dev;
    OK(dhf_device_parse("cuda:1", &dev));
    assert_int_equal(dev.type, DHF_CUDA);
    assert_int_equal(dev.index, 1);
    assert_int_equal(dhf_device_parse("gpu", &dev), DHF_ERR_ARG);
    OK(dhf_scope_end());
}

static void test_inference_mode_region(void **state)
{
    (void)state;
    dhf_scope_begin();
    const int64_t s[1] = {2};
    dhf_tensor w, y;
    OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 1, &w));
    OK(dhf_set_requires_grad(w, true));
    OK(dhf_inference_begin());
    assert_false(dhf_is_grad_enabled());
    OK(dhf_mul_scalar(w, 2.0, &y));
    assert_false(dhf_requires_grad(y));
    OK(dhf_inference_end());
    assert_true(dhf_is_grad_enabled());
    OK(dhf_scope_end());
}

static void test_caching_allocator_reuses_blocks(void **state)
{
    (void)state;
    size_t in_use0, cached0, peak0;
    OK(dhf_cpu_caching_allocator(true));
    dhf_cpu_allocator_stats(&in_use0, &cached0, &peak0);
    const int64_t s[1] = {1 << 20}; /* 4 MiB of f32 */
    dhf_tensor a = NULL;
    OK(dhf_zeros(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 1, &a));
    void *first = dhf_data_ptr(a);
    size_t in_use, cached, peak;
    dhf_cpu_allocator_stats(&in_use, &cached, &peak);
    assert_true(in_use >= in_use0 + (4u << 20));
    dhf_free(a);
    dhf_cpu_allocator_stats(&in_use, &cached, &peak);
    assert_true(cached >= 4u << 20); /* kept, not returned to the OS */
    OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 1, &a));
    assert_ptr_equal(dhf_data_ptr(a), first); /* the same block came back */
    assert_float_equal(dhf_item(a), 1.0, 0.0);
    /* oneDNN-backed ops (conv2d) accept its blocks (data pointer == context) */
    const int64_t sx[4] = {1, 64, 32, 32}, sw[4] = {64, 64, 3, 3};
    dhf_tensor x = NULL, w = NULL, y = NULL;
    OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, sx, 4, &x));
    OK(dhf_full(1.0 / 576, DHF_F32, (dhf_device){DHF_CPU, 0}, sw, 4, &w));
    OK(dhf_conv2d(x, w, NULL, 1, 1, 1, 1, 1, &y));
    assert_float_equal(dhf_item(y), 4.0 / 9.0, 1e-5); /* corner: 2x2 of 3x3 window */
    dhf_free(x);
    dhf_free(w);
    dhf_free(y);
    dhf_free(a);
    OK(dhf_cpu_caching_allocator(false));
    dhf_cpu_allocator_stats(&in_use, &cached, &peak);
    assert_int_equal(cached, 0);
    /* tensors still work with the previous allocator */
    OK(dhf_ones(DHF_F32, (dhf_device){DHF_CPU, 0}, s, 1, &a));
    assert_float_equal(dhf_item(a), 1.0, 0.0);
    dhf_free(a);
    int applied = -1;
    OK(dhf_set_blas_threads(2, &applied));
    assert_true(applied == 2 || applied == 0); /* 0: BLAS without thread control */
}

int main(void)
{
    dhf_set_num_threads(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_mismatch_is_an_error),
        cmocka_unit_test(test_scoped_loop_leaks_nothing),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_adamw_matches_update_rule),
        cmocka_unit_test(test_ops_against_known_values),
        cmocka_unit_test(test_inference_mode_region),
        cmocka_unit_test(test_caching_allocator_reuses_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
