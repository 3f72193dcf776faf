/* test_aggregator_parity.c — the aggregation network, its loss, gradients and three
 * AdamW steps against a reference fixture (float64 reference, stored as float32), in
 * BOTH orders (straightforward and fast).
 * dhf-test: label=parity
 *
 * Usage: test_aggregator_parity [FIXTURE.safetensors]
 *   default ../shared/fixtures/aggregator/agg_small.safetensors (run from the repo
 *   root); any file with the same schema works (see the fixture's MANIFEST.md).
 *
 * Tolerances (the MANIFEST's suggestions for a float32 implementation):
 *   resized inputs atol 1e-5; bottleneck outputs, descriptors, logits, losses atol 1e-4;
 *   gradients |got - want| <= 1e-5 + 1e-3 |want|; parameters after AdamW steps atol
 *   2e-5, skipping entries whose reference gradient |grad| < 1e-6 (their first updates
 *   are ~lr * g / (|g| + eps), i.e. anywhere within +-lr at float32 noise level). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"
#include "shim/torch_shim.h"
#include "train/aggregator.h"
#include "engine/engine.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/step.h"

#define DEFAULT_FIXTURE "../shared/fixtures/aggregator/agg_small.safetensors"
#define MAX_K 256

static const char *g_path = DEFAULT_FIXTURE;
static dhf_st_file *g_st;
static dhf_agg_config g_cfg;
static int g_native[DHF_AGG_MAX_LAYERS][2];
static dhf_tensor g_feats[DHF_AGG_MAX_LAYERS];     /* [2, S, C, h, w]: src, trg */
static int64_t g_src_idx[MAX_K], g_trg_idx[MAX_K];
static int g_K;

/* worst |err| / tolerance seen by the checks of the running test (printed at its end) */
static double g_worst_ratio;
static char g_worst_what[320];

static const dhf_agg_order ORDER_FAST = DHF_AGG_FAST;
static const dhf_agg_order ORDER_STRAIGHT = DHF_AGG_STRAIGHTFORWARD;

/* ---- helpers ---------------------------------------------------------------- */

static float *read_expected(const char *name, int64_t *numel)
{
    const dhf_st_info *info = NULL;
    if (dhf_st_get(g_st, name, &info)) {
        print_error("%s\n", dhf_err_msg());
        return NULL;
    }
    float *buf = malloc((size_t)(info->numel > 0 ? info->numel : 1) * sizeof *buf);
    if (!buf || dhf_st_read_f32(g_st, name, buf, (size_t)info->numel)) {
        print_error("%s: %s\n", name, dhf_err_msg());
        free(buf);
        return NULL;
    }
    *numel = info->numel;
    return buf;
}

static float *tensor_values(dhf_tensor t, int64_t *numel)
{
    *numel = dhf_numel(t);
    float *buf = malloc((size_t)(*numel > 0 ? *numel : 1) * sizeof *buf);
    if (!buf || dhf_to_buffer(t, DHF_F32, buf, (size_t)*numel * sizeof *buf) != DHF_OK) {
        print_error("reading tensor values: %s\n", dhf_last_error());
        free(buf);
        return NULL;
    }
    return buf;
}

/* Compares `got` (any shape with the right numel) against fixture tensor `name`
 * (or the slice [offset, offset + numel) of it): |got - want| <= atol + rtol |want|,
 * ignoring entries where skip_mask[i] is set. Fails the test with the worst entry. */
static void check_close_slice(dhf_tensor got, const char *name, int64_t offset, double atol,
                              double rtol, const unsigned char *skip_mask, const char *label)
{
    int64_t n_want = 0, n_got = 0;
    float *want = read_expected(name, &n_want);
    float *have = tensor_values(got, &n_got);
    assert_non_null(want);
    assert_non_null(have);
    if (offset + n_got > n_want) {
        print_error("%s: %s has %lld values, need [%lld, %lld)\n", label, name,
                    (long long)n_want, (long long)offset, (long long)(offset + n_got));
        fail();
    }
    double worst = 0, worst_excess = -1;
    int64_t worst_i = -1, bad = 0;
    for (int64_t i = 0; i < n_got; i++) {
        if (skip_mask && skip_mask[i])
            continue;
        double w = want[offset + i], h = have[i];
        double err = fabs(h - w), lim = atol + rtol * fabs(w);
        if (!(err <= lim))
            bad++;
        if (err / lim > g_worst_ratio) {
            g_worst_ratio = err / lim;
            snprintf(g_worst_what, sizeof g_worst_what, "%.120s (%.160s)", name, label);
        }
        if (!(err - lim <= worst_excess) || worst_i < 0) {
            worst_excess = err - lim;
            worst = err;
            worst_i = i;
        }
    }
    if (bad) {
        print_error("%s vs %s: %lld of %lld entries outside atol %g rtol %g; worst [%lld] "
                    "got %.8g want %.8g (|err| %.3g)\n", label, name, (long long)bad,
                    (long long)n_got, atol, rtol, (long long)worst_i, have[worst_i],
                    want[offset + worst_i], worst);
        free(want);
        free(have);
        fail();
    }
    free(want);
    free(have);
}

static void check_close(dhf_tensor got, const char *name, double atol, double rtol,
                        const char *label)
{
    check_close_slice(got, name, 0, atol, rtol, NULL, label);
}

/* the network from the fixture; *run (when not NULL) gets an engine runner with these
 * choices */
static int load_network_with(dhf_aggregator *a, dhf_runner **run, dhf_agg_order order,
                             int recompute_layers, dhf_engine_kernels kernels,
                             dhf_engine_conv_algo conv_algo, dhf_engine_conv1x1 conv1x1)
{
    dhf_agg_config c = g_cfg;
    c.order = order;
    c.recompute_layers = recompute_layers;
    dhf_engine_options eo = { .kernels = kernels, .conv_algo = conv_algo, .conv1x1 = conv1x1 };
    if (dhf_aggregator_init(a, &c, 1) || dhf_aggregator_load(a, g_st, "") ||
        (run && dhf_runner_create(run, &eo))) {
        print_error("%s\n", dhf_err_msg());
        return -1;
    }
    return 0;
}

/* libtorch autograd for every order (the oneDNN step has tests of its own) */
static int load_network_lean(dhf_aggregator *a, dhf_agg_order order, int recompute_layers)
{
    return load_network_with(a, NULL, order, recompute_layers, DHF_ENGINE_KERNELS_LIBTORCH,
                             DHF_ENGINE_CONV_AUTO, DHF_ENGINE_1X1_AUTO);
}

static int load_network(dhf_aggregator *a, dhf_agg_order order)
{
    return load_network_lean(a, order, 0);
}

static void check_all_grads(const dhf_aggregator *a, const char *label)
{
    for (int i = 0; i < a->num_params; i++) {
        dhf_tensor g = NULL;
        char name[128];
        assert_int_equal(dhf_grad(a->params[i], &g), DHF_OK);
        if (!g) {
            print_error("%s: %s has no gradient after backward\n", label, a->names[i]);
            fail();
        }
        snprintf(name, sizeof name, "grad.%s", a->names[i]);
        check_close(g, name, 1e-5, 1e-3, label);
        dhf_free(g);
    }
}

/* ---- fixture setup ------------------------------------------------------------ */

static int json_int(const cJSON *o, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return dhf_err_set("%s: metadata config: '%s' missing or not a number", g_path, key);
    *out = v->valueint;
    return 0;
}

static int parse_config(void)
{
    const char *txt = dhf_st_metadata_get(g_st, "config");
    if (!txt)
        return dhf_err_set("%s: __metadata__ has no \"config\" entry", g_path);
    cJSON *j = cJSON_Parse(txt);
    if (!j)
        return dhf_err_set("%s: metadata config is not valid JSON", g_path);
    int rc = -1, groups = 0;
    memset(&g_cfg, 0, sizeof g_cfg);
    if (json_int(j, "L", &g_cfg.num_layers) || json_int(j, "S", &g_cfg.num_timesteps) ||
        json_int(j, "P", &g_cfg.proj_dim) || json_int(j, "R", &g_cfg.out_res) ||
        json_int(j, "gn_groups", &groups))
        goto done;
    if (g_cfg.num_layers < 1 || g_cfg.num_layers > DHF_AGG_MAX_LAYERS) {
        dhf_err_set("%s: config L=%d outside 1..%d", g_path, g_cfg.num_layers, DHF_AGG_MAX_LAYERS);
        goto done;
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "channels");
    const cJSON *hw = cJSON_GetObjectItemCaseSensitive(j, "native_hw");
    if (cJSON_GetArraySize(ch) != g_cfg.num_layers || cJSON_GetArraySize(hw) != g_cfg.num_layers) {
        dhf_err_set("%s: config channels/native_hw must list L=%d layers", g_path,
                    g_cfg.num_layers);
        goto done;
    }
    for (int l = 0; l < g_cfg.num_layers; l++) {
        const cJSON *p = cJSON_GetArrayItem(hw, l);
        g_cfg.channels[l] = cJSON_GetArrayItem(ch, l)->valueint;
        g_native[l][0] = cJSON_GetArrayItem(p, 0)->valueint;
        g_native[l][1] = cJSON_GetArrayItem(p, 1)->valueint;
    }
    /* the implementation hard-wires these: a fixture asking for others is not ours */
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "gn_eps");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(j, "logit_scale");
    if (groups != DHF_BNECK_GN_GROUPS || !cJSON_IsNumber(eps) ||
        fabs(eps->valuedouble - DHF_BNECK_GN_EPS) > 1e-12 || !cJSON_IsNumber(scale) ||
        fabs(scale->valuedouble - 1.0 / DHF_CLIP_TEMPERATURE) > 1e-6) {
        dhf_err_set("%s: config expects gn_groups %d, gn_eps %g, logit_scale %g; this "
                    "implementation uses 32, 1e-5, 1/0.07", g_path, groups,
                    cJSON_IsNumber(eps) ? eps->valuedouble : NAN,
                    cJSON_IsNumber(scale) ? scale->valuedouble : NAN);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

static int load_inputs(void)
{
    for (int l = 0; l < g_cfg.num_layers; l++) {
        dhf_tensor pair[2] = { NULL, NULL };
        for (int i = 0; i < 2; i++) {
            char name[64];
            int64_t shape[4] = { g_cfg.num_timesteps, g_cfg.channels[l], g_native[l][0],
                                 g_native[l][1] };
            snprintf(name, sizeof name, "input.%s.%d", i ? "trg" : "src", l);
            if (dhf_st_load_expect(g_st, name, shape, 4, &pair[i]))
                return -1;
        }
        dhf_status st = dhf_stack(pair, 2, 0, &g_feats[l]);
        dhf_free(pair[0]);
        dhf_free(pair[1]);
        if (st != DHF_OK)
            return dhf_err_set("stacking inputs of layer %d: %s", l, dhf_last_error());
    }
    /* keypoints -> indices through the library (checked against idx.* in a test) */
    const dhf_st_info *ks = NULL, *kt = NULL;
    if (dhf_st_get(g_st, "keypoints.src", &ks) || dhf_st_get(g_st, "keypoints.trg", &kt))
        return -1;
    if (ks->ndim != 2 || ks->shape[1] != 2 || ks->numel != kt->numel || ks->shape[0] > MAX_K)
        return dhf_err_set("%s: keypoints.src/.trg must be [K, 2] with the same K <= %d",
                           g_path, MAX_K);
    int K = (int)ks->shape[0];
    float src[2 * MAX_K], trg[2 * MAX_K];
    if (dhf_st_read_f32(g_st, "keypoints.src", src, (size_t)(2 * K)) ||
        dhf_st_read_f32(g_st, "keypoints.trg", trg, (size_t)(2 * K)))
        return -1;
    g_K = dhf_keypoints_to_indices(src, trg, NULL, NULL, K, g_cfg.out_res, g_src_idx, g_trg_idx);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    /* one thread: these shapes are small, and OpenMP barriers spin badly when the
     * machine is shared (the tests must not depend on the load) */
    dhf_set_num_threads(1);
    if (dhf_st_open(g_path, &g_st) || parse_config() || load_inputs()) {
        print_error("fixture setup failed: %s\n", dhf_err_msg());
        return -1;
    }
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    g_worst_ratio = 0;
    g_worst_what[0] = '\0';
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    printf("[ info ] worst |error| / tolerance %.3g at %s\n", g_worst_ratio,
           g_worst_what[0] ? g_worst_what : "-");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int l = 0; l < DHF_AGG_MAX_LAYERS; l++)
        dhf_free(g_feats[l]);
    dhf_st_close(g_st);
    return 0;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_keypoint_indices(void **state)
{
    (void)state;
    int64_t n = 0;
    for (int side = 0; side < 2; side++) {
        const char *name = side ? "idx.trg" : "idx.src";
        const int64_t *mine = side ? g_trg_idx : g_src_idx;
        const dhf_st_info *info = NULL;
        assert_int_equal(dhf_st_get(g_st, name, &info), 0);
        n = info->numel;
        assert_int_equal(n, g_K);
        for (int64_t k = 0; k < n; k++) {
            int64_t want;
            memcpy(&want, (const char *)info->data + 8 * k, 8);
            if (want != mine[k]) {
                print_error("%s[%lld]: got %lld want %lld\n", name, (long long)k,
                            (long long)mine[k], (long long)want);
                fail();
            }
        }
    }
}

static void test_resize(void **state)
{
    (void)state;
    for (int l = 0; l < g_cfg.num_layers; l++)
        for (int i = 0; i < 2; i++) {
            dhf_tensor img = NULL, r = NULL;
            char name[64];
            snprintf(name, sizeof name, "expected.resized.%s.%d", i ? "trg" : "src", l);
            assert_int_equal(dhf_select(g_feats[l], 0, i, &img), DHF_OK);
            assert_int_equal(dhf_agg_resize(img, g_cfg.out_res, &r), 0);
            check_close(r, name, 1e-5, 0, "resize");
            dhf_free(r);
            dhf_free(img);
        }
}

static void test_softmax_weights(void **state)
{
    (void)state;
    dhf_aggregator a;
    assert_int_equal(load_network(&a, DHF_AGG_FAST), 0);
    dhf_tensor w = NULL;
    assert_int_equal(dhf_softmax(a.mixing_weights, 0, &w), DHF_OK);
    check_close(w, "expected.softmax_weights", 1e-6, 0, "softmax");
    dhf_free(w);
    dhf_aggregator_free(&a);
}

/* expected.bneck.{src,trg} [S, L, P, R, R]: every (s, l) block, from the resized input
 * (paper order) or the native input (fast order, all S in one batch). */
static void test_bottlenecks(void **state)
{
    dhf_agg_order order = *(const dhf_agg_order *)*state;
    dhf_aggregator a;
    assert_int_equal(load_network(&a, order), 0);
    const int64_t S = g_cfg.num_timesteps, L = g_cfg.num_layers;
    const int64_t block = (int64_t)g_cfg.proj_dim * g_cfg.out_res * g_cfg.out_res;
    dhf_scope_begin();
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < L; l++) {
            dhf_tensor img = NULL, out = NULL;
            assert_int_equal(dhf_select(g_feats[l], 0, i, &img), DHF_OK);  /* [S, C, h, w] */
            if (order == DHF_AGG_FAST) {
                assert_int_equal(dhf_bottleneck_forward_native(&a.bneck[l], img, g_cfg.out_res,
                                                               NULL, &out), 0);
            } else {
                dhf_tensor r = NULL;
                assert_int_equal(dhf_agg_resize(img, g_cfg.out_res, &r), 0);
                assert_int_equal(dhf_bottleneck_forward(&a.bneck[l], r, &out), 0);
            }
            for (int64_t s = 0; s < S; s++) {
                dhf_tensor one = NULL;
                char label[96];
                snprintf(label, sizeof label, "bottleneck (%s, s=%lld, l=%d)",
                         dhf_agg_order_name(order), (long long)s, l);
                assert_int_equal(dhf_select(out, 0, s, &one), DHF_OK);
                check_close_slice(one, i ? "expected.bneck.trg" : "expected.bneck.src",
                                  (s * L + l) * block, 1e-4, 0, NULL, label);
            }
        }
    assert_int_equal(dhf_scope_end(), DHF_OK);
    dhf_aggregator_free(&a);
}

/* Descriptors, logits, losses and every parameter's gradient. */
static void test_forward_backward(void **state)
{
    dhf_agg_order order = *(const dhf_agg_order *)*state;
    const char *on = dhf_agg_order_name(order);
    dhf_aggregator a;
    assert_int_equal(load_network(&a, order), 0);
    dhf_scope_begin();
    dhf_tensor desc = NULL, ds = NULL, dt = NULL;
    if (dhf_aggregator_forward(&a, g_feats, &desc)) {
        print_error("%s\n", dhf_err_msg());
        fail();
    }
    assert_int_equal(dhf_select(desc, 0, 0, &ds), DHF_OK);
    assert_int_equal(dhf_select(desc, 0, 1, &dt), DHF_OK);
    check_close(ds, "expected.desc.src", 1e-4, 0, on);
    check_close(dt, "expected.desc.trg", 1e-4, 0, on);

    dhf_clip_loss_result res;
    if (dhf_clip_loss(ds, dt, g_src_idx, g_trg_idx, g_K, &res)) {
        print_error("%s\n", dhf_err_msg());
        fail();
    }
    check_close(res.logits_src_rows, "expected.logits.src_rows", 1e-4, 0, on);
    check_close(res.logits_trg_rows, "expected.logits.trg_rows", 1e-4, 0, on);
    check_close(res.loss, "expected.loss", 1e-4, 0, on);
    check_close(res.loss_src, "expected.loss_src", 1e-4, 0, on);
    check_close(res.loss_trg, "expected.loss_trg", 1e-4, 0, on);

    assert_int_equal(dhf_backward(res.loss), DHF_OK);
    char label[96];
    snprintf(label, sizeof label, "%s gradient", on);
    check_all_grads(&a, label);
    dhf_clip_loss_result_free(&res);
    assert_int_equal(dhf_scope_end(), DHF_OK);
    dhf_aggregator_free(&a);
}

/* the loss of a training step against the fixture's expected.loss (atol 1e-4) */
static void check_step_loss(double loss, const char *label)
{
    float want = 0;
    assert_int_equal(dhf_st_read_f32(g_st, "expected.loss", &want, 1), 0);
    if (!(fabs(loss - want) <= 1e-4)) {
        print_error("%s: loss %.7f want %.7f\n", label, loss, want);
        fail();
    }
}

/* The memory-lean backward of the fast order (graphs of some or all layers dropped
 * after the forward and rebuilt): the same loss and gradients. */
static void test_lean_backward(void **state)
{
    (void)state;
    const int counts[3] = { 1, g_cfg.num_layers / 2, g_cfg.num_layers };
    for (int k = 0; k < 3; k++) {
        dhf_aggregator a;
        dhf_step_stats st;
        char label[96];
        assert_int_equal(load_network_lean(&a, DHF_AGG_FAST, counts[k]), 0);
        if (dhf_pair_backward(&a, NULL, DHF_AGG_FAST, g_feats, g_src_idx, g_trg_idx, g_K,
                              &st)) {
            print_error("%s\n", dhf_err_msg());
            fail();
        }
        snprintf(label, sizeof label, "lean backward (%d layers recomputed)", counts[k]);
        check_step_loss(st.loss, label);
        snprintf(label, sizeof label, "fast order, %d layer(s) recomputed, gradient", counts[k]);
        check_all_grads(&a, label);
        dhf_aggregator_free(&a);
    }
}

/* The fast order's training step written out over oneDNN (fastnet.h), with each 3x3
 * algorithm and each choice of 1x1 kernels: the same loss and gradients as the
 * fixture. */
static void test_onednn_backward(void **state)
{
    (void)state;
    if (!dhf_engine_available())
        skip();
    static const char *const algo_names[4] = { "auto 3x3", "direct 3x3", "winograd 3x3",
                                               "auto 3x3, 1x1 onednn" };
    for (int v = 0; v < 4; v++) {
        const dhf_engine_conv_algo algo = v == 1   ? DHF_ENGINE_CONV_DIRECT
                                          : v == 2 ? DHF_ENGINE_CONV_WINOGRAD
                                                   : DHF_ENGINE_CONV_AUTO;
        const dhf_engine_conv1x1 c1 = v < 3 ? DHF_ENGINE_1X1_AUTO : DHF_ENGINE_1X1_ONEDNN;
        dhf_aggregator a;
        dhf_runner *run = NULL;
        dhf_step_stats st;
        char label[96];
        assert_int_equal(
            load_network_with(&a, &run, DHF_AGG_FAST, 0, DHF_ENGINE_KERNELS_ONEDNN, algo, c1), 0);
        /* twice: the second step reuses the workspace of the first */
        for (int rep = 0; rep < 2; rep++) {
            if (dhf_pair_backward(&a, run, DHF_AGG_FAST, g_feats, g_src_idx, g_trg_idx, g_K, &st)) {
                print_error("%s\n", dhf_err_msg());
                fail();
            }
            snprintf(label, sizeof label, "oneDNN step (%s)", algo_names[v]);
            check_step_loss(st.loss, label);
            snprintf(label, sizeof label, "oneDNN step (%s, call %d), gradient",
                     algo_names[v], rep + 1);
            check_all_grads(&a, label);
        }
        printf("[ info ] oneDNN %s: %s\n", algo_names[v], dhf_runner_describe(run));
        dhf_aggregator_free(&a);
        dhf_runner_free(run);
    }
}

typedef struct {
    dhf_agg_order order;
    dhf_engine_kernels kernels;
} adamw_variant;
static const adamw_variant ADAMW_STRAIGHT = { DHF_AGG_STRAIGHTFORWARD,
                                              DHF_ENGINE_KERNELS_LIBTORCH };
static const adamw_variant ADAMW_FAST = { DHF_AGG_FAST, DHF_ENGINE_KERNELS_LIBTORCH };
static const adamw_variant ADAMW_ONEDNN = { DHF_AGG_FAST, DHF_ENGINE_KERNELS_ONEDNN };

/* Three AdamW steps (lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 0) on the same pair. */
static void test_adamw_steps(void **state)
{
    const adamw_variant *v = *state;
    dhf_agg_order order = v->order;
    const bool onednn = v->kernels == DHF_ENGINE_KERNELS_ONEDNN;
    if (onednn && !dhf_engine_available())
        skip();
    const char *on = onednn ? "fast (oneDNN)" : dhf_agg_order_name(order);
    dhf_aggregator a;
    dhf_runner *run = NULL;
    /* libtorch's fast order trains memory-lean here (half the layers recomputed) */
    assert_int_equal(load_network_with(&a, &run, order,
                                       order == DHF_AGG_FAST && !onednn ? g_cfg.num_layers / 2 : 0,
                                       v->kernels, DHF_ENGINE_CONV_AUTO, DHF_ENGINE_1X1_AUTO),
                     0);
    dhf_adamw_hparams hp = dhf_adamw_defaults();
    hp.lr = 1e-3;
    hp.beta1 = 0.9;
    hp.beta2 = 0.999;
    hp.eps = 1e-8;
    hp.weight_decay = 0.0;
    dhf_agg_adamw opt;
    assert_int_equal(dhf_agg_adamw_init(&opt, &a, &hp), 0);

    /* entries whose reference gradient is at float32 noise level are not compared */
    unsigned char *skip[DHF_AGG_MAX_PARAMS] = { 0 };
    int64_t n_skipped = 0;
    for (int i = 0; i < a.num_params; i++) {
        char name[128];
        int64_t n = 0;
        snprintf(name, sizeof name, "grad.%s", a.names[i]);
        float *g = read_expected(name, &n);
        assert_non_null(g);
        skip[i] = calloc((size_t)n, 1);
        assert_non_null(skip[i]);
        for (int64_t k = 0; k < n; k++)
            if (fabsf(g[k]) < 1e-6f) {
                skip[i][k] = 1;
                n_skipped++;
            }
        free(g);
    }

    int64_t nl = 0;
    float *losses = read_expected("adamw.losses", &nl);
    assert_non_null(losses);
    assert_int_equal(nl, 3);
    for (int step = 1; step <= 3; step++) {
        dhf_step_stats st;
        if (dhf_train_step(&a, run, &opt, order, g_feats, g_src_idx, g_trg_idx, g_K, &st)) {
            print_error("%s step %d: %s\n", on, step, dhf_err_msg());
            fail();
        }
        if (!(fabs(st.loss - losses[step - 1]) <= 1e-4)) {
            print_error("%s: loss before step %d: got %.7f want %.7f\n", on, step, st.loss,
                        losses[step - 1]);
            fail();
        }
        for (int i = 0; i < a.num_params; i++) {
            char name[128], label[160];
            snprintf(name, sizeof name, "adamw.step%d.%s", step, a.names[i]);
            snprintf(label, sizeof label, "%s after AdamW step %d", on, step);
            check_close_slice(a.params[i], name, 0, 2e-5, 0, skip[i], label);
        }
    }
    free(losses);

    dhf_clip_loss_result res;
    if (dhf_pair_loss(&a, order, g_feats, g_src_idx, g_trg_idx, g_K, &res)) {
        print_error("%s\n", dhf_err_msg());
        fail();
    }
    check_close(res.loss, "adamw.loss_after", 1e-4, 0, on);
    dhf_clip_loss_result_free(&res);
    printf("[ info ] %s: %lld parameter entries with |grad| < 1e-6 not compared after AdamW\n",
           on, (long long)n_skipped);
    for (int i = 0; i < a.num_params; i++)
        free(skip[i]);
    dhf_agg_adamw_free(&opt);
    dhf_aggregator_free(&a);
    dhf_runner_free(run);
}

int main(int argc, char **argv)
{
    struct stat sb;
    if (argc > 1) {
        g_path = argv[1];
    } else if (stat("../shared/fixtures", &sb) != 0) {
        fprintf(stderr, "../shared/fixtures not found: skipping (exit 77)\n");
        return 77;
    }
    if (stat(g_path, &sb) != 0) {
        fprintf(stderr, "test_aggregator_parity: fixture file %s not found\n", g_path);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keypoint_indices),
        cmocka_unit_test_setup_teardown(test_resize, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_softmax_weights, test_setup, test_teardown),
        /* named per order, so a failure says which order broke */
        { "bottlenecks_straightforward", test_bottlenecks, test_setup, test_teardown, (void *)&ORDER_STRAIGHT },
        { "bottlenecks_fast", test_bottlenecks, test_setup, test_teardown, (void *)&ORDER_FAST },
        { "forward_backward_straightforward", test_forward_backward, test_setup, test_teardown,
          (void *)&ORDER_STRAIGHT },
        { "forward_backward_fast", test_forward_backward, test_setup, test_teardown, (void *)&ORDER_FAST },
        cmocka_unit_test_setup_teardown(test_lean_backward, test_setup, test_teardown),
        { "onednn_backward", test_onednn_backward, test_setup, test_teardown, NULL },
        { "adamw_steps_straightforward", test_adamw_steps, test_setup, test_teardown,
          (void *)&ADAMW_STRAIGHT },
        { "adamw_steps_fast", test_adamw_steps, test_setup, test_teardown, (void *)&ADAMW_FAST },
        { "adamw_steps_onednn", test_adamw_steps, test_setup, test_teardown,
          (void *)&ADAMW_ONEDNN },
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
