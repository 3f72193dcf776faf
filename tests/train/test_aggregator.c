/* test_aggregator.c — unit tests of the aggregation network and its loss: the fast
 * order equals the paper's order (descriptors and gradients) on random shapes with
 * integer and non-integer resize factors, parameter names and init, keypoint ->
 * grid-index rounding (half to even) and visibility filtering, the loss against a
 * direct double-precision evaluation, and errors on bad input.
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
#include "train/aggregator.h"
#include "train/bilinear.h"
#include "engine/engine.h"
#include "train/agg_engine.h"
#include "train/gn_fused.h"
#include "train/loss.h"
#include "train/step.h"

/* ---- helpers ---------------------------------------------------------------- */

static float *values(dhf_tensor t, int64_t *n)
{
    *n = dhf_numel(t);
    float *v = malloc((size_t)*n * sizeof *v);
    assert_non_null(v);
    assert_int_equal(dhf_to_buffer(t, DHF_F32, v, (size_t)*n * sizeof *v), DHF_OK);
    return v;
}

/* max |a - b| over all entries, and max |b| for scale */
static double max_abs_diff(dhf_tensor a, dhf_tensor b, double *scale)
{
    int64_t na, nb;
    float *x = values(a, &na), *y = values(b, &nb);
    assert_int_equal(na, nb);
    double m = 0, s = 0;
    for (int64_t i = 0; i < na; i++) {
        double d = fabs((double)x[i] - y[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
        if (fabs(y[i]) > s)
            s = fabs(y[i]);
    }
    free(x);
    free(y);
    if (scale)
        *scale = s;
    return m;
}

/* Random features [B, S, C_l, H_l, W_l] for every layer. */
static void random_feats(const dhf_agg_config *c, const int (*hw)[2], int B, uint64_t seed,
                         dhf_tensor *feats)
{
    for (int l = 0; l < c->num_layers; l++) {
        int64_t shape[5] = { B, c->num_timesteps, c->channels[l], hw[l][0], hw[l][1] };
        assert_int_equal(dhf_randn(seed + (uint64_t)l, DHF_F32, shape, 5, &feats[l]), DHF_OK);
    }
}

/* Moves the GN affine parameters and mixing weights away from 1/0 so that their
 * gradients and effect are exercised (as the fixtures do). */
/* an engine runner with these choices */
static dhf_runner *runner_with(dhf_engine_kernels k, dhf_engine_conv_algo algo,
                               dhf_engine_conv1x1 c1)
{
    dhf_engine_options o = { .kernels = k, .conv_algo = algo, .conv1x1 = c1 };
    dhf_runner *r = NULL;
    assert_int_equal(dhf_runner_create(&r, &o), 0);
    return r;
}

static void perturb(dhf_aggregator *a, uint64_t seed)
{
    bool prev;
    dhf_set_grad_enabled(false, &prev);
    for (int i = 0; i < a->num_params; i++) {
        if (dhf_ndim(a->params[i]) != 1)
            continue;
        dhf_tensor noise = NULL;
        int64_t n = dhf_numel(a->params[i]);
        assert_int_equal(dhf_randn(seed + (uint64_t)i, DHF_F32, &n, 1, &noise), DHF_OK);
        assert_int_equal(dhf_add_scaled_(a->params[i], noise, i == 0 ? 0.5 : 0.1), DHF_OK);
        dhf_free(noise);
    }
    dhf_set_grad_enabled(prev, NULL);
}

typedef struct {
    dhf_agg_config cfg;
    int hw[8][2];
    int batch;
} shape_case;

/* Descriptor and a loss-like scalar's gradients in one order. */
static void run_order(dhf_aggregator *a, const dhf_tensor *feats, dhf_agg_order order,
                      dhf_tensor *desc, dhf_tensor *grads)
{
    assert_int_equal(dhf_aggregator_clear_grads(a), 0);
    if (dhf_aggregator_forward_order(a, feats, order, desc)) {
        print_error("%s\n", dhf_err_msg());
        fail();
    }
    /* a non-uniform scalar so that every output entry gets a different weight */
    dhf_tensor w = NULL, prod = NULL, total = NULL;
    int64_t shape[DHF_MAX_DIMS];
    int nd;
    assert_int_equal(dhf_shape(*desc, shape, &nd), DHF_OK);
    assert_int_equal(dhf_randn(777, DHF_F32, shape, nd, &w), DHF_OK);
    assert_int_equal(dhf_mul(*desc, w, &prod), DHF_OK);
    assert_int_equal(dhf_sum(prod, &total), DHF_OK);
    assert_int_equal(dhf_backward(total), DHF_OK);
    for (int i = 0; i < a->num_params; i++) {
        dhf_tensor g = NULL;
        assert_int_equal(dhf_grad(a->params[i], &g), DHF_OK);
        assert_non_null(g);
        assert_int_equal(dhf_clone(g, &grads[i]), DHF_OK);
        dhf_free(g);
    }
    dhf_free(w);
    dhf_free(prod);
    dhf_free(total);
}

static void check_orders_agree(const shape_case *sc)
{
    dhf_aggregator a;
    dhf_tensor feats[8] = { 0 };
    if (dhf_aggregator_init(&a, &sc->cfg, 42)) {
        print_error("%s\n", dhf_err_msg());
        fail();
    }
    perturb(&a, 5);
    random_feats(&sc->cfg, sc->hw, sc->batch, 1000, feats);

    dhf_tensor d_fast = NULL, d_slow = NULL;
    dhf_tensor g_fast[DHF_AGG_MAX_LAYERS * DHF_BNECK_NPARAMS + 1] = { 0 };
    dhf_tensor g_slow[DHF_AGG_MAX_LAYERS * DHF_BNECK_NPARAMS + 1] = { 0 };
    run_order(&a, feats, DHF_AGG_FAST, &d_fast, g_fast);
    run_order(&a, feats, DHF_AGG_STRAIGHTFORWARD, &d_slow, g_slow);

    double scale = 0, err = max_abs_diff(d_fast, d_slow, &scale);
    printf("[ info ] descriptor fast vs straightforward: max error %.3g (max |desc| %.3g)\n",
           err, scale);
    if (!(err <= 1e-5 * (1 + scale))) {
        print_error("descriptor: fast vs straightforward differ by %g (max |desc| %g)\n", err,
                    scale);
        fail();
    }
    for (int i = 0; i < a.num_params; i++) {
        double gs = 0, ge = max_abs_diff(g_fast[i], g_slow[i], &gs);
        /* float32 sums over up to B*S*R*R terms in different orders */
        if (!(ge <= 1e-6 + 1e-4 * gs)) {
            print_error("grad %s: fast vs straightforward differ by %g (max |grad| %g)\n",
                        a.names[i], ge, gs);
            fail();
        }
        dhf_free(g_fast[i]);
        dhf_free(g_slow[i]);
    }
    dhf_free(d_fast);
    dhf_free(d_slow);
    for (int l = 0; l < sc->cfg.num_layers; l++)
        dhf_free(feats[l]);
    dhf_aggregator_free(&a);
}

/* ---- order equivalence ---------------------------------------------------------- */

static void test_orders_agree_integer_factors(void **state)
{
    (void)state;
    shape_case sc = { .cfg = { .num_layers = 3, .num_timesteps = 2, .proj_dim = 128,
                               .out_res = 16, .channels = { 48, 40, 24 } },
                      .hw = { { 4, 4 }, { 8, 8 }, { 16, 16 } }, .batch = 2 };
    check_orders_agree(&sc);
}

static void test_orders_agree_fractional_factors(void **state)
{
    (void)state;
    /* 16/6, 16/12, 16/7 x 16/9 (non-square), and a map larger than R (downsampling) */
    shape_case sc = { .cfg = { .num_layers = 4, .num_timesteps = 3, .proj_dim = 128,
                               .out_res = 16, .channels = { 36, 20, 16, 12 } },
                      .hw = { { 6, 6 }, { 12, 12 }, { 7, 9 }, { 20, 20 } }, .batch = 2 };
    check_orders_agree(&sc);
}

static void test_orders_agree_odd_output(void **state)
{
    (void)state;
    /* odd R, one image, one timestep, P = 256 */
    shape_case sc = { .cfg = { .num_layers = 2, .num_timesteps = 1, .proj_dim = 256,
                               .out_res = 11, .channels = { 64, 8 } },
                      .hw = { { 3, 3 }, { 5, 5 } }, .batch = 1 };
    check_orders_agree(&sc);
}

/* ---- fused GroupNorms (gn_fused.h) --------------------------------------------------- */

static dhf_tensor affine_param(uint64_t seed, int64_t n, double base)
{
    dhf_tensor t = NULL;
    assert_int_equal(dhf_randn(seed, DHF_F32, &n, 1, &t), DHF_OK);
    assert_int_equal(dhf_mul_scalar_(t, 0.2), DHF_OK);
    assert_int_equal(dhf_add_scalar_(t, base), DHF_OK);
    return t;
}

/* Bilinear resizing by matrix products equals libtorch's interpolate, and the weight
 * matrix has PyTorch's taps (hand-computed for 4 -> 8: src = (d + 0.5) / 2 - 0.5). */
static void test_bilinear_mm(void **state)
{
    (void)state;
    double u[8 * 4];
    dhf_bilinear_matrix(4, 8, u);
    const double row0[4] = { 1, 0, 0, 0 }, row1[4] = { 0.75, 0.25, 0, 0 };
    const double row2[4] = { 0.25, 0.75, 0, 0 }, row7[4] = { 0, 0, 0, 1 };
    for (int i = 0; i < 4; i++) {
        assert_true(fabs(u[0 * 4 + i] - row0[i]) < 1e-7);
        assert_true(fabs(u[1 * 4 + i] - row1[i]) < 1e-7);
        assert_true(fabs(u[2 * 4 + i] - row2[i]) < 1e-7);
        assert_true(fabs(u[7 * 4 + i] - row7[i]) < 1e-7);
    }
    const int64_t shapes[4][3] = { { 6, 6, 16 }, { 8, 8, 64 }, { 7, 9, 16 }, { 20, 20, 16 } };
    for (int k = 0; k < 4; k++) {
        int64_t sz[4] = { 2, 5, shapes[k][0], shapes[k][1] };
        dhf_tensor x = NULL, a = NULL, b = NULL;
        assert_int_equal(dhf_randn(90 + k, DHF_F32, sz, 4, &x), DHF_OK);
        assert_int_equal(dhf_interpolate(x, shapes[k][2], shapes[k][2], DHF_INTERP_BILINEAR,
                                         false, &a), DHF_OK);
        assert_int_equal(dhf_bilinear_resize_mm(x, shapes[k][2], &b), 0);
        double scale = 0, err = max_abs_diff(b, a, &scale);
        if (!(err <= 1e-6 * (1 + scale))) {
            print_error("bilinear by products %lldx%lld -> %lld: max error %g\n",
                        (long long)sz[2], (long long)sz[3], (long long)shapes[k][2], err);
            fail();
        }
        dhf_free(x);
        dhf_free(a);
        dhf_free(b);
    }
}

/* resize(GN_up(z)) == GN(resize(z)) (times a per-sample factor), for up- and
 * down-sampling, non-square maps and channel means far from zero. */
static void test_gn_of_upsampled(void **state)
{
    (void)state;
    const int64_t shapes[4][3] = { { 6, 6, 16 }, { 7, 9, 16 }, { 20, 20, 16 }, { 8, 8, 64 } };
    for (int k = 0; k < 4; k++) {
        const int64_t C = 64, N = 3, R = shapes[k][2];
        int64_t sz[4] = { N, C, shapes[k][0], shapes[k][1] }, sn = N;
        dhf_tensor z = NULL, g = NULL, gb = NULL, mult = NULL, ref_in = NULL, ref = NULL;
        dhf_tensor fused = NULL, fused_r = NULL, ref_m = NULL, m4 = NULL;
        assert_int_equal(dhf_randn(40 + k, DHF_F32, sz, 4, &z), DHF_OK);
        assert_int_equal(dhf_add_scalar_(z, 3.0), DHF_OK);      /* mean 3x the spread */
        g = affine_param(50 + k, C, 1.0);
        gb = affine_param(60 + k, C, 0.0);
        assert_int_equal(dhf_rand(70 + k, DHF_F32, &sn, 1, &mult), DHF_OK);
        assert_int_equal(dhf_agg_resize(z, R, &ref_in), 0);
        assert_int_equal(dhf_group_norm(ref_in, 32, g, gb, 1e-5, &ref), DHF_OK);
        int64_t s4[4] = { N, 1, 1, 1 };
        assert_int_equal(dhf_view(mult, s4, 4, &m4), DHF_OK);
        assert_int_equal(dhf_mul(ref, m4, &ref_m), DHF_OK);
        assert_int_equal(dhf_gn_of_upsampled(z, R, 32, g, gb, 1e-5, mult, &fused), 0);
        assert_int_equal(dhf_agg_resize(fused, R, &fused_r), 0);
        double scale = 0, err = max_abs_diff(fused_r, ref_m, &scale);
        printf("[ info ] GN of upsampled %lldx%lld -> %lld: max error %.3g (max |ref| %.3g)\n",
               (long long)sz[2], (long long)sz[3], (long long)R, err, scale);
        if (!(err <= 2e-5 * (1 + scale))) {
            print_error("GN of upsampled %lldx%lld -> %lld: max error %g (max |ref| %g)\n",
                        (long long)sz[2], (long long)sz[3], (long long)R, err, scale);
            fail();
        }
        dhf_free(z); dhf_free(g); dhf_free(gb); dhf_free(mult); dhf_free(ref_in);
        dhf_free(ref); dhf_free(fused); dhf_free(fused_r); dhf_free(ref_m); dhf_free(m4);
    }
}

/* GN(conv1x1(x)) folded into a per-sample convolution, on post-ReLU-like inputs with
 * channel means 5x their spread (uncentred second moments must still be accurate). */
static void test_conv1x1_gn(void **state)
{
    (void)state;
    const int64_t N = 4, Ci = 48, Co = 128, H = 12, W = 10;
    int64_t sx[4] = { N, Ci, H, W }, sw[4] = { Co, Ci, 1, 1 }, sn = N;
    dhf_tensor x = NULL, w = NULL, g = NULL, b = NULL, conv = NULL, ref = NULL, got = NULL;
    dhf_tensor mult = NULL, m4 = NULL, ref_m = NULL, got_m = NULL, xm = NULL, xs = NULL;
    assert_int_equal(dhf_randn(80, DHF_F32, sx, 4, &x), DHF_OK);
    assert_int_equal(dhf_add_scalar_(x, 5.0), DHF_OK);
    assert_int_equal(dhf_randn(81, DHF_F32, sw, 4, &w), DHF_OK);
    g = affine_param(82, Co, 1.0);
    b = affine_param(83, Co, 0.0);
    assert_int_equal(dhf_conv2d(x, w, NULL, 1, 1, 0, 0, 1, &conv), DHF_OK);
    assert_int_equal(dhf_group_norm(conv, 32, g, b, 1e-5, &ref), DHF_OK);
    assert_int_equal(dhf_conv1x1_gn(x, w, 32, g, b, 1e-5, NULL, NULL, NULL, &got), 0);
    double scale = 0, err = max_abs_diff(got, ref, &scale);
    printf("[ info ] GN(1x1 conv), input means 5x spread: max error %.3g (max |ref| %.3g)\n",
           err, scale);
    if (!(err <= 5e-5 * (1 + scale))) {
        print_error("GN(1x1 conv): max error %g (max |ref| %g)\n", err, scale);
        fail();
    }
    /* with shared moments and a per-sample factor */
    assert_int_equal(dhf_rand(84, DHF_F32, &sn, 1, &mult), DHF_OK);
    int64_t s4[4] = { N, 1, 1, 1 };
    assert_int_equal(dhf_view(mult, s4, 4, &m4), DHF_OK);
    assert_int_equal(dhf_mul(ref, m4, &ref_m), DHF_OK);
    assert_int_equal(dhf_input_moments(x, &xm, &xs), 0);
    assert_int_equal(dhf_conv1x1_gn(x, w, 32, g, b, 1e-5, xm, xs, mult, &got_m), 0);
    err = max_abs_diff(got_m, ref_m, &scale);
    assert_true(err <= 5e-5 * (1 + scale));
    /* one moment without the other is refused */
    dhf_tensor bad = NULL;
    assert_int_equal(dhf_conv1x1_gn(x, w, 32, g, b, 1e-5, xm, NULL, NULL, &bad), -1);
    dhf_free(x); dhf_free(w); dhf_free(g); dhf_free(b); dhf_free(conv); dhf_free(ref);
    dhf_free(got); dhf_free(mult); dhf_free(m4); dhf_free(ref_m); dhf_free(got_m);
    dhf_free(xm); dhf_free(xs);
}

/* ---- memory-lean backward (step.h) ------------------------------------------------------ */

static void grads_of(const dhf_aggregator *a, dhf_tensor *out)
{
    for (int i = 0; i < a->num_params; i++) {
        dhf_tensor g = NULL;
        assert_int_equal(dhf_grad(a->params[i], &g), DHF_OK);
        assert_non_null(g);
        assert_int_equal(dhf_clone(g, &out[i]), DHF_OK);
        dhf_free(g);
    }
}

/* Same loss and gradients with 0 (plain autograd), some and all layers recomputed, and
 * the same as the paper's order. */
static void test_lean_backward_matches_plain(void **state)
{
    (void)state;
    dhf_agg_config c = { .num_layers = 3, .num_timesteps = 2, .proj_dim = 128, .out_res = 12,
                         .channels = { 40, 24, 16 } };
    const int hw[3][2] = { { 5, 5 }, { 12, 12 }, { 8, 8 } };
    dhf_tensor feats[3] = { 0 };
    random_feats(&c, hw, 2, 300, feats);
    const int64_t si[4] = { 3, 50, 143, 77 }, ti[4] = { 9, 9, 100, 0 };
    const int n_params = 1 + 3 * DHF_BNECK_NPARAMS;
    dhf_tensor ref[1 + 3 * DHF_BNECK_NPARAMS] = { 0 }, got[1 + 3 * DHF_BNECK_NPARAMS] = { 0 };
    double ref_loss = 0;
    /* -1: straightforward order; -2: the oneDNN step (fastnet.h) */
    const int variants[5] = { 0, 1, 3, -1, -2 };
    const int n_variants = dhf_engine_available() ? 5 : 4;
    for (int v = 0; v < n_variants; v++) {
        dhf_aggregator a;
        dhf_step_stats st;
        c.recompute_layers = variants[v] < 0 ? 0 : variants[v];
        dhf_runner *run = runner_with(variants[v] == -2 ? DHF_ENGINE_KERNELS_ONEDNN
                                                        : DHF_ENGINE_KERNELS_LIBTORCH,
                                      DHF_ENGINE_CONV_AUTO, DHF_ENGINE_1X1_AUTO);
        assert_int_equal(dhf_aggregator_init(&a, &c, 21), 0);
        perturb(&a, 8);
        dhf_agg_order order = variants[v] < 0 ? DHF_AGG_STRAIGHTFORWARD : DHF_AGG_FAST;
        /* twice: the second call must not accumulate onto the first one's grads */
        for (int rep = 0; rep < 2; rep++)
            if (dhf_pair_backward(&a, run, order, feats, si, ti, 4, &st)) {
                print_error("%s\n", dhf_err_msg());
                fail();
            }
        grads_of(&a, v == 0 ? ref : got);
        if (v == 0) {
            ref_loss = st.loss;
        } else {
            assert_true(fabs(st.loss - ref_loss) < 1e-5 * (1 + fabs(ref_loss)));
            for (int i = 0; i < n_params; i++) {
                double gs = 0, ge = max_abs_diff(got[i], ref[i], &gs);
                if (!(ge <= 1e-6 + 1e-4 * gs)) {
                    print_error("variant %d: grad %s differs by %g (max %g)\n", variants[v],
                                a.names[i], ge, gs);
                    fail();
                }
                dhf_free(got[i]);
            }
        }
        dhf_aggregator_free(&a);
        dhf_runner_free(run);
    }
    for (int i = 0; i < n_params; i++)
        dhf_free(ref[i]);
    for (int l = 0; l < 3; l++)
        dhf_free(feats[l]);
}

/* ---- the oneDNN training step ----------------------------------------------------- */

/* Loss and every gradient of the oneDNN step (fastnet.h) against libtorch autograd on
 * the same fast order, for the shapes of the order tests: integer and fractional
 * factors, a non-square map, a map larger than R, P = 128 and 256. Direct 3x3
 * convolutions agree to float32 summation order; Winograd's rounding differs more. */
static void check_onednn_step(const shape_case *sc)
{
    if (!dhf_engine_available())
        skip();
    const int L = sc->cfg.num_layers;
    dhf_tensor feats[8] = { 0 };
    random_feats(&sc->cfg, sc->hw, 2, 500, feats);
    const int R = sc->cfg.out_res;
    const int64_t si[5] = { 0, 7, R * R - 1, R + 3, 2 * R }, ti[5] = { 5, 5, 0, R * R / 2, 1 };
    dhf_tensor ref[1 + 8 * DHF_BNECK_NPARAMS] = { 0 }, got[1 + 8 * DHF_BNECK_NPARAMS] = { 0 };
    double ref_loss = 0;
    /* libtorch; oneDNN direct; oneDNN winograd (1x1 on dhf's kernels where the CPU
     * has AVX-512F); oneDNN direct with oneDNN's 1x1 */
    static const char *const names[4] = { "libtorch", "direct", "winograd",
                                          "direct, 1x1 onednn" };
    for (int v = 0; v < 4; v++) {
        dhf_agg_config c = sc->cfg;
        dhf_runner *run = runner_with(
            v == 0 ? DHF_ENGINE_KERNELS_LIBTORCH : DHF_ENGINE_KERNELS_ONEDNN,
            v == 2 ? DHF_ENGINE_CONV_WINOGRAD : DHF_ENGINE_CONV_DIRECT,
            v == 3 ? DHF_ENGINE_1X1_ONEDNN : DHF_ENGINE_1X1_AUTO);
        dhf_aggregator a;
        dhf_step_stats st;
        assert_int_equal(dhf_aggregator_init(&a, &c, 77), 0);
        perturb(&a, 9);
        for (int rep = 0; rep < 2; rep++)
            if (dhf_pair_backward(&a, run, DHF_AGG_FAST, feats, si, ti, 5, &st)) {
                print_error("%s\n", dhf_err_msg());
                fail();
            }
        grads_of(&a, v == 0 ? ref : got);
        if (v == 0) {
            ref_loss = st.loss;
            dhf_aggregator_free(&a);
            dhf_runner_free(run);
            continue;
        }
        const double rtol = v == 2 ? 2e-3 : 1e-4;
        printf("[ info ] oneDNN (%s) loss %.7f, libtorch %.7f\n", names[v], st.loss, ref_loss);
        assert_true(fabs(st.loss - ref_loss) < 1e-5 * (1 + fabs(ref_loss)));
        double worst = 0;
        for (int i = 0; i < a.num_params; i++) {
            double gs = 0, ge = max_abs_diff(got[i], ref[i], &gs);
            if (ge / (1e-6 + rtol * gs) > worst)
                worst = ge / (1e-6 + rtol * gs);
            if (!(ge <= 1e-6 + rtol * gs)) {
                print_error("oneDNN (%s): grad %s differs by %g (max %g)\n", names[v],
                            a.names[i], ge, gs);
                fail();
            }
            dhf_free(got[i]);
        }
        printf("[ info ] worst |error| / tolerance %.3g\n", worst);
        dhf_aggregator_free(&a);
        dhf_runner_free(run);
    }
    for (int i = 0; i < 1 + L * DHF_BNECK_NPARAMS; i++)
        dhf_free(ref[i]);
    for (int l = 0; l < L; l++)
        dhf_free(feats[l]);
}

static void test_onednn_step_integer_factors(void **state)
{
    (void)state;
    shape_case sc = { .cfg = { .num_layers = 3, .num_timesteps = 2, .proj_dim = 128,
                               .out_res = 16, .channels = { 48, 40, 24 } },
                      .hw = { { 4, 4 }, { 8, 8 }, { 16, 16 } }, .batch = 2 };
    check_onednn_step(&sc);
}

static void test_onednn_step_fractional_factors(void **state)
{
    (void)state;
    shape_case sc = { .cfg = { .num_layers = 4, .num_timesteps = 3, .proj_dim = 128,
                               .out_res = 16, .channels = { 36, 20, 16, 12 } },
                      .hw = { { 6, 6 }, { 12, 12 }, { 7, 9 }, { 20, 20 } }, .batch = 2 };
    check_onednn_step(&sc);
}

static void test_onednn_step_odd_output(void **state)
{
    (void)state;
    shape_case sc = { .cfg = { .num_layers = 2, .num_timesteps = 1, .proj_dim = 256,
                               .out_res = 11, .channels = { 64, 8 } },
                      .hw = { { 3, 3 }, { 5, 5 } }, .batch = 2 };
    check_onednn_step(&sc);
}

/* Native maps larger than the output, resized down, with more than one 256-pixel
 * block of the 1x1 kernels per image and pixel tails (36x30). */
static void test_onednn_step_large_maps(void **state)
{
    (void)state;
    shape_case sc = { .cfg = { .num_layers = 3, .num_timesteps = 2, .proj_dim = 128,
                               .out_res = 16, .channels = { 40, 24, 20 } },
                      .hw = { { 32, 32 }, { 8, 8 }, { 36, 30 } }, .batch = 2 };
    check_onednn_step(&sc);
}

/* Forwards without autograd (validation, dhf eval) run on the oneDNN kernels with
 * the layers sharing one set of buffers: the same descriptors as libtorch's fast
 * order, for one image and for two, and the workspace follows a change of batch.
 * Layer 0 (33x32) is the largest: the shared input buffer is sized by it. */
static void test_onednn_forward_without_grad(void **state)
{
    (void)state;
    if (!dhf_engine_available())
        skip();
    dhf_agg_config c = { .num_layers = 4, .num_timesteps = 3, .proj_dim = 128, .out_res = 16,
                         .channels = { 36, 20, 16, 12 } };
    const int hw[4][2] = { { 33, 32 }, { 12, 12 }, { 7, 9 }, { 20, 20 } };
    dhf_aggregator ref, fast;
    dhf_runner *run_ref = runner_with(DHF_ENGINE_KERNELS_LIBTORCH, DHF_ENGINE_CONV_AUTO,
                                      DHF_ENGINE_1X1_AUTO);
    dhf_runner *run_fast = runner_with(DHF_ENGINE_KERNELS_AUTO, DHF_ENGINE_CONV_AUTO,
                                       DHF_ENGINE_1X1_AUTO);
    assert_int_equal(dhf_aggregator_init(&ref, &c, 5), 0);
    assert_int_equal(dhf_aggregator_init(&fast, &c, 5), 0);
    perturb(&ref, 6);
    perturb(&fast, 6);
    bool prev = true;
    dhf_set_grad_enabled(false, &prev);
    for (int B = 1; B <= 2; B++) {
        dhf_tensor feats[4] = { 0 }, d_ref = NULL, d_fast = NULL;
        random_feats(&c, hw, B, 900 + (uint64_t)B, feats);
        assert_int_equal(dhf_agg_forward_run(&ref, run_ref, DHF_AGG_FAST, feats, &d_ref), 0);
        if (dhf_agg_forward_run(&fast, run_fast, DHF_AGG_FAST, feats, &d_fast)) {
            print_error("%s\n", dhf_err_msg());
            fail();
        }
        assert_true(dhf_runner_has_inference_workspace(run_fast));   /* it ran on oneDNN */
        assert_false(dhf_runner_has_inference_workspace(run_ref));
        double scale = 0, err = max_abs_diff(d_fast, d_ref, &scale);
        printf("[ info ] B=%d: oneDNN forward vs libtorch max error %.3g (max |desc| %.3g)\n",
               B, err, scale);
        assert_true(err <= 1e-5 * (1 + scale));
        dhf_free(d_ref);
        dhf_free(d_fast);
        for (int l = 0; l < 4; l++)
            dhf_free(feats[l]);
    }
    dhf_set_grad_enabled(prev, NULL);
    dhf_aggregator_free(&ref);
    dhf_aggregator_free(&fast);
    dhf_runner_free(run_ref);
    dhf_runner_free(run_fast);
}

/* Mixed precision (bf16 convolutions, as on CUDA) runs on the CPU too: both orders
 * stay within bf16 rounding of float32, the gradients are float32 and close. */
static void test_mixed_precision_bf16(void **state)
{
    (void)state;
    dhf_agg_config c = { .num_layers = 2, .num_timesteps = 2, .proj_dim = 128, .out_res = 8,
                         .channels = { 32, 16 } };
    const int hw[2][2] = { { 4, 4 }, { 8, 8 } };
    dhf_tensor feats[2] = { 0 };
    random_feats(&c, hw, 2, 60, feats);
    dhf_aggregator a;
    assert_int_equal(dhf_aggregator_init(&a, &c, 3), 0);
    perturb(&a, 4);
    dhf_tensor d32 = NULL, g32[1 + 2 * DHF_BNECK_NPARAMS] = { 0 };
    run_order(&a, feats, DHF_AGG_FAST, &d32, g32);
    assert_int_equal(dhf_aggregator_set_compute_dtype(&a, DHF_BF16), 0);
    for (int o = 0; o < 2; o++) {
        dhf_tensor d16 = NULL, g16[1 + 2 * DHF_BNECK_NPARAMS] = { 0 };
        run_order(&a, feats, o ? DHF_AGG_STRAIGHTFORWARD : DHF_AGG_FAST, &d16, g16);
        assert_int_equal(dhf_get_dtype(d16), DHF_F32);
        double scale = 0, err = max_abs_diff(d16, d32, &scale);
        printf("[ info ] bf16 %s: descriptor max error %.3g (max |desc| %.3g)\n",
               o ? "straightforward" : "fast", err, scale);
        assert_true(err > 0);                       /* the casts did happen */
        assert_true(err <= 3e-2 * scale);
        /* bf16 inputs to sums with cancellation: compare directions (cosine) */
        double worst_cos = 1;
        for (int i = 0; i < a.num_params; i++) {
            int64_t n1, n2;
            assert_int_equal(dhf_get_dtype(g16[i]), DHF_F32);
            float *x = values(g16[i], &n1), *y = values(g32[i], &n2);
            assert_int_equal(n1, n2);
            double xy = 0, xx = 0, yy = 0;
            for (int64_t k = 0; k < n1; k++) {
                xy += (double)x[k] * y[k];
                xx += (double)x[k] * x[k];
                yy += (double)y[k] * y[k];
            }
            double cosv = yy > 0 ? xy / sqrt(xx * yy + 1e-300) : (xx == 0 ? 1 : 0);
            if (cosv < worst_cos)
                worst_cos = cosv;
            if (!(cosv >= 0.99)) {
                print_error("bf16: grad %s has cosine %.4f with float32's\n", a.names[i], cosv);
                fail();
            }
            free(x);
            free(y);
            dhf_free(g16[i]);
        }
        printf("[ info ] bf16 %s: lowest gradient cosine vs float32 %.5f\n",
               o ? "straightforward" : "fast", worst_cos);
        dhf_free(d16);
    }
    assert_int_equal(dhf_aggregator_set_compute_dtype(&a, DHF_I64), -1);
    dhf_device cpu = { DHF_CPU, 0 }, cuda = { DHF_CUDA, 0 };
    dhf_dtype dt;
    assert_int_equal(dhf_agg_mixed_precision_parse("auto", cpu, &dt), 0);
    assert_int_equal(dt, DHF_F32);
    assert_int_equal(dhf_agg_mixed_precision_parse("auto", cuda, &dt), 0);
    assert_int_equal(dt, DHF_BF16);
    assert_int_equal(dhf_agg_mixed_precision_parse("fp16", cpu, &dt), 0);
    assert_int_equal(dt, DHF_F16);
    assert_int_equal(dhf_agg_mixed_precision_parse("half", cpu, &dt), -1);
    for (int i = 0; i < a.num_params; i++)
        dhf_free(g32[i]);
    dhf_free(d32);
    for (int l = 0; l < 2; l++)
        dhf_free(feats[l]);
    dhf_aggregator_free(&a);
}

/* ---- parameters ------------------------------------------------------------------ */

static void test_param_names_and_init(void **state)
{
    (void)state;
    dhf_agg_config c = { .num_layers = 2, .num_timesteps = 3, .proj_dim = 384, .out_res = 8,
                         .channels = { 1280, 320 } };
    dhf_aggregator a, b;
    assert_int_equal(dhf_aggregator_init(&a, &c, 9), 0);
    assert_int_equal(dhf_aggregator_init(&b, &c, 9), 0);
    assert_int_equal(a.num_params, 1 + 2 * 12);
    assert_string_equal(a.names[0], "mixing_weights");
    assert_string_equal(a.names[1], "bottlenecks.0.conv1.weight");
    assert_string_equal(a.names[2], "bottlenecks.0.conv1.norm.weight");
    assert_string_equal(a.names[12], "bottlenecks.0.shortcut.norm.bias");
    assert_string_equal(a.names[13 + 9], "bottlenecks.1.shortcut.weight");
    assert_int_equal(dhf_numel(a.params[0]), 6);

    int64_t n;
    float *mw = values(a.params[0], &n);
    for (int64_t i = 0; i < n; i++)
        assert_true(mw[i] == 1.0f);
    free(mw);

    /* conv1 of layer 0: [96, 1280, 1, 1], fan_out = 96 -> std sqrt(2/96) = 0.1443;
     * conv2: [96, 96, 3, 3], fan_out = 864 -> std 0.0481 */
    const int which[2] = { 1, 4 };
    const double want_std[2] = { sqrt(2.0 / 96.0), sqrt(2.0 / 864.0) };
    for (int k = 0; k < 2; k++) {
        float *w = values(a.params[which[k]], &n);
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            s += w[i];
            s2 += (double)w[i] * w[i];
        }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        /* n >= 82944 draws: the sample std is within ~0.5% (5 sigma) */
        assert_true(fabs(mean) < 5 * want_std[k] / sqrt((double)n));
        assert_true(fabs(sd / want_std[k] - 1) < 0.01);
        free(w);
        /* same seed, same values */
        double d = max_abs_diff(a.params[which[k]], b.params[which[k]], NULL);
        assert_true(d == 0.0);
    }
    float *gw = values(a.params[2], &n), *gb = values(a.params[3], &n);
    for (int64_t i = 0; i < n; i++)
        assert_true(gw[i] == 1.0f && gb[i] == 0.0f);
    free(gw);
    free(gb);
    for (int i = 0; i < a.num_params; i++)
        assert_true(dhf_requires_grad(a.params[i]));
    dhf_aggregator_free(&a);
    dhf_aggregator_free(&b);
}

static void test_bad_config_and_input(void **state)
{
    (void)state;
    dhf_aggregator a;
    dhf_agg_config bad = { .num_layers = 1, .num_timesteps = 1, .proj_dim = 100, .out_res = 8,
                           .channels = { 16 } };
    assert_int_equal(dhf_aggregator_init(&a, &bad, 1), -1);
    assert_non_null(strstr(dhf_err_msg(), "projection_dim"));

    dhf_agg_config c = { .num_layers = 1, .num_timesteps = 2, .proj_dim = 128, .out_res = 8,
                         .channels = { 16 } };
    assert_int_equal(dhf_aggregator_init(&a, &c, 1), 0);
    dhf_tensor f = NULL, d = NULL;
    int64_t wrong[5] = { 2, 2, 17, 4, 4 };   /* 17 channels, layer wants 16 */
    assert_int_equal(dhf_randn(1, DHF_F32, wrong, 5, &f), DHF_OK);
    assert_int_equal(dhf_aggregator_forward(&a, &f, &d), -1);
    assert_non_null(strstr(dhf_err_msg(), "layer 0"));
    assert_null(d);
    dhf_free(f);
    dhf_aggregator_free(&a);

    dhf_agg_order o;
    assert_int_equal(dhf_agg_order_parse("fast", &o), 0);
    assert_int_equal(o, DHF_AGG_FAST);
    assert_int_equal(dhf_agg_order_parse("straightforward", &o), 0);
    assert_int_equal(o, DHF_AGG_STRAIGHTFORWARD);
    assert_int_equal(dhf_agg_order_parse("quick", &o), -1);
}

/* ---- keypoints -------------------------------------------------------------------- */

static void test_half_to_even(void **state)
{
    (void)state;
    assert_int_equal(dhf_grid_round(2.5, 16), 2);
    assert_int_equal(dhf_grid_round(3.5, 16), 4);
    assert_int_equal(dhf_grid_round(0.5, 16), 0);
    assert_int_equal(dhf_grid_round(1.5, 16), 2);
    assert_int_equal(dhf_grid_round(14.5, 16), 14);
    assert_int_equal(dhf_grid_round(2.4999, 16), 2);
    assert_int_equal(dhf_grid_round(2.5001, 16), 3);
    /* clipped first, then rounded */
    assert_int_equal(dhf_grid_round(-0.7, 16), 0);
    assert_int_equal(dhf_grid_round(15.4, 16), 15);
    assert_int_equal(dhf_grid_round(15.6, 16), 15);
    assert_int_equal(dhf_grid_round(100.0, 16), 15);
    assert_int_equal(dhf_grid_round(NAN, 16), 0);
    /* idx = y * R + x */
    assert_int_equal(dhf_grid_index(2.5, 3.5, 16), 4 * 16 + 2);
    assert_int_equal(dhf_grid_index(15.9, 0.2, 16), 15);
    /* pixels -> grid: x * R / W, no half-pixel offset: 10 px of 256 at R 64 = 2.5 -> 2 */
    assert_true(dhf_pixel_to_grid(10.0, 256.0, 64) == 2.5);
    assert_true(dhf_pixel_to_grid(100.0, 400.0, 64) == 16.0);
    assert_int_equal(dhf_grid_round(dhf_pixel_to_grid(14.0, 256.0, 64), 64), 4); /* 3.5 */
}

static void test_keypoint_visibility(void **state)
{
    (void)state;
    const float src[] = { 1, 1, 2, 2, 3, 3, 4.5f, 5.5f };
    const float trg[] = { 7, 0, 6, 1, 5, 2, 2.5f, 0.5f };
    const bool sv[] = { true, false, true, true };
    const bool tv[] = { true, true, false, true };
    int64_t si[4], ti[4];
    int k = dhf_keypoints_to_indices(src, trg, sv, tv, 4, 8, si, ti);
    assert_int_equal(k, 2);
    assert_int_equal(si[0], 1 * 8 + 1);
    assert_int_equal(ti[0], 0 * 8 + 7);
    assert_int_equal(si[1], 6 * 8 + 4);     /* (4.5, 5.5) -> (4, 6) */
    assert_int_equal(ti[1], 0 * 8 + 2);     /* (2.5, 0.5) -> (2, 0) */
    assert_int_equal(dhf_keypoints_to_indices(src, trg, NULL, NULL, 4, 8, si, ti), 4);

    /* pixel variant: source 80x40 image, target 160x160, R = 8 */
    const float sp[] = { 25, 15 };          /* x 25*8/80 = 2.5 -> 2, y 15*8/40 = 3 */
    const float tp[] = { 70, 150 };         /* x 3.5 -> 4, y 7.5 -> 7 (clipped to 7) */
    k = dhf_keypoints_px_to_indices(sp, 80, 40, tp, 160, 160, NULL, NULL, 1, 8, si, ti);
    assert_int_equal(k, 1);
    assert_int_equal(si[0], 3 * 8 + 2);
    assert_int_equal(ti[0], 7 * 8 + 4);
}

/* ---- loss --------------------------------------------------------------------------- */

/* Direct evaluation in double of the formula in loss.h on [P, RR] data. */
static double reference_loss(const float *a, const float *b, int P, int RR, const int64_t *si,
                             const int64_t *ti, int K)
{
    double *an = malloc(sizeof(double) * P * RR), *bn = malloc(sizeof(double) * P * RR);
    for (int j = 0; j < RR; j++) {
        double na = 0, nb = 0;
        for (int p = 0; p < P; p++) {
            na += (double)a[p * RR + j] * a[p * RR + j];
            nb += (double)b[p * RR + j] * b[p * RR + j];
        }
        for (int p = 0; p < P; p++) {
            an[p * RR + j] = a[p * RR + j] / sqrt(na);
            bn[p * RR + j] = b[p * RR + j] / sqrt(nb);
        }
    }
    double halves[2] = { 0, 0 };
    for (int side = 0; side < 2; side++) {
        const double *x = side ? bn : an, *y = side ? an : bn;
        const int64_t *rows = side ? ti : si, *labels = side ? si : ti;
        for (int k = 0; k < K; k++) {
            double mx = -INFINITY, z = 0, target = 0;
            double *lg = malloc(sizeof(double) * RR);
            for (int j = 0; j < RR; j++) {
                double dot = 0;
                for (int p = 0; p < P; p++)
                    dot += x[p * RR + rows[k]] * y[p * RR + j];
                lg[j] = dot / 0.07;
                if (lg[j] > mx)
                    mx = lg[j];
            }
            for (int j = 0; j < RR; j++)
                z += exp(lg[j] - mx);
            target = lg[labels[k]];
            halves[side] += -(target - mx - log(z)) / K;
            free(lg);
        }
    }
    free(an);
    free(bn);
    return 0.5 * (halves[0] + halves[1]);
}

static void test_clip_loss_matches_direct_formula(void **state)
{
    (void)state;
    const int P = 5, R = 4, RR = R * R, K = 3;
    int64_t shape[3] = { P, R, R };
    dhf_tensor ds = NULL, dt = NULL;
    assert_int_equal(dhf_randn(11, DHF_F32, shape, 3, &ds), DHF_OK);
    assert_int_equal(dhf_randn(12, DHF_F32, shape, 3, &dt), DHF_OK);
    const int64_t si[3] = { 0, 5, 15 }, ti[3] = { 3, 5, 5 };   /* shared target index */
    int64_t n;
    float *a = values(ds, &n), *b = values(dt, &n);
    double want = reference_loss(a, b, P, RR, si, ti, K);

    dhf_clip_loss_result r;
    assert_int_equal(dhf_clip_loss(ds, dt, si, ti, K, &r), 0);
    double got = dhf_item(r.loss);
    assert_true(fabs(got - want) < 1e-5 * (1 + fabs(want)));
    assert_int_equal(dhf_size(r.logits_src_rows, 0), K);
    assert_int_equal(dhf_size(r.logits_src_rows, 1), RR);
    double ls = dhf_item(r.loss_src), lt = dhf_item(r.loss_trg);
    assert_true(fabs(0.5 * (ls + lt) - got) < 1e-6);
    dhf_clip_loss_result_free(&r);

    /* a scaled descriptor gives the same loss (rows are normalised) */
    dhf_tensor ds3 = NULL;
    assert_int_equal(dhf_mul_scalar(ds, 3.0, &ds3), DHF_OK);
    assert_int_equal(dhf_clip_loss(ds3, dt, si, ti, K, &r), 0);
    assert_true(fabs(dhf_item(r.loss) - want) < 1e-5 * (1 + fabs(want)));
    dhf_clip_loss_result_free(&r);

    /* out-of-range index and K = 0 are errors, not crashes */
    const int64_t bad[1] = { RR };
    assert_int_equal(dhf_clip_loss(ds, dt, bad, ti, 1, &r), -1);
    assert_non_null(strstr(dhf_err_msg(), "outside"));
    assert_int_equal(dhf_clip_loss(ds, dt, si, ti, 0, &r), -1);
    free(a);
    free(b);
    dhf_free(ds);
    dhf_free(dt);
    dhf_free(ds3);
}

int main(void)
{
    /* one thread: these shapes are small, and OpenMP barriers spin badly when the
     * machine is shared (the tests must not depend on the load) */
    dhf_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_to_even),
        cmocka_unit_test(test_keypoint_visibility),
        cmocka_unit_test(test_clip_loss_matches_direct_formula),
        cmocka_unit_test(test_param_names_and_init),
        cmocka_unit_test(test_bad_config_and_input),
        cmocka_unit_test(test_orders_agree_integer_factors),
        cmocka_unit_test(test_orders_agree_fractional_factors),
        cmocka_unit_test(test_orders_agree_odd_output),
        cmocka_unit_test(test_bilinear_mm),
        cmocka_unit_test(test_gn_of_upsampled),
        cmocka_unit_test(test_conv1x1_gn),
        cmocka_unit_test(test_lean_backward_matches_plain),
        cmocka_unit_test(test_onednn_step_integer_factors),
        cmocka_unit_test(test_onednn_step_fractional_factors),
        cmocka_unit_test(test_onednn_step_odd_output),
        cmocka_unit_test(test_onednn_step_large_maps),
        cmocka_unit_test(test_onednn_forward_without_grad),
        cmocka_unit_test(test_mixed_precision_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
