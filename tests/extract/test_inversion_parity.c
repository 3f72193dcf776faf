/* test_inversion_parity.c — DHF's DDIM inversion against the paper's own code
 * (inversion_feats_1step / inversion_feats / resized_concat .safetensors): the
 * schedule (alphas_cumprod, UNet and next timesteps, alphas of every step), the
 * latent trajectory xs, xT, every eps, and the native-resolution features of each
 * saved label delivered through the streaming callback; then DHF's
 * collect_and_resize_feats at the stored output resolutions.
 * Usage: test_inversion_parity [MODEL_DIR [REF_DIR [TOLERANCES_JSON]]]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/torch/st_tensor.h"
#include "extract/inversion.h"
#include "extract/nn_layers.h"
#include "common/parity.h"
#include "extract/unet.h"
#include "common/parity_util.h"

static dhf_unet *g_unet;
static dhf_tolerances *g_tol;

static int setup(void **state)
{
    (void)state;
    if (dhf_tolerances_load(g_tol_path, &g_tol) != 0 ||
        dhf_unet_load(parity_path(g_model_dir, "unet"), parity_placement(), &g_unet) != 0) {
        fprintf(stderr, "setup: %s\n", dhf_err_msg());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dhf_unet_free(g_unet);
    dhf_tolerances_free(g_tol);
    return 0;
}

static int64_t read_i64(const dhf_st_file *f, const char *name, int i)
{
    const dhf_st_info *info = NULL;
    if (dhf_st_get(f, name, &info) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t v;
    memcpy(&v, (const char *)info->data + (size_t)i * sizeof v, sizeof v);
    return v;
}

/* The schedule DHF used, value by value. alphas_cumprod must be bit-equal: the
 * tolerance would allow a float64-derived schedule, but ours reproduces torch's. */
static void check_schedule(const dhf_st_file *ref, int N)
{
    dhf_ddim_plan plan;
    assert_int_equal(dhf_ddim_plan_make(N, &plan), 0);
    float *buf = malloc(1000 * sizeof *buf);
    assert_int_equal(dhf_st_read_f32(ref, "meta/alphas_cumprod", buf, 1000), 0);
    int n_diff = 0;
    double worst = 0;
    for (int i = 0; i < 1000; i++) {
        double d = fabs((double)buf[i] - (double)plan.alphas_cumprod[i]);
        if (d > 0)
            n_diff++;
        if (d / buf[i] > worst)
            worst = d / buf[i];
    }
    printf("alphas_cumprod: %d of 1000 differ from torch's float32 values (worst rel %.3g)\n",
           n_diff, worst);
    assert_int_equal(n_diff, 0);   /* torch's float32 linspace/cumprod reproduced */
    assert_int_equal(dhf_st_read_f32(ref, "meta/step_unet_timestep", buf, (size_t)N), 0);
    for (int i = 0; i < N; i++)
        assert_float_equal(buf[i], (float)plan.unet_t[i], 0);
    assert_int_equal(dhf_st_read_f32(ref, "meta/step_next_timestep", buf, (size_t)N), 0);
    for (int i = 0; i < N; i++)
        assert_float_equal(buf[i], (float)plan.next_t[i], 0);
    assert_int_equal(dhf_st_read_f32(ref, "meta/step_alpha", buf, (size_t)N), 0);
    for (int i = 0; i < N; i++)
        assert_true(fabs(buf[i] - plan.alpha[i]) <= 1e-6 * buf[i]);
    assert_int_equal(dhf_st_read_f32(ref, "meta/step_alpha_next", buf, (size_t)N), 0);
    for (int i = 0; i < N; i++)
        assert_true(fabs(buf[i] - plan.alpha_next[i]) <= 1e-6 * buf[i]);
    for (int i = 0; i < N; i++)
        assert_int_equal(read_i64(ref, "meta/scheduler_timesteps", i),
                         dhf_ddim_scheduler_timestep(&plan, i));
    free(buf);
}

typedef struct {
    dhf_parity_report *r;
    const dhf_st_file *ref;
    int img;
    int n_calls;
    int last_step;
    dhf_tensor keep[64];   /* features of the first delivered step (resized_concat) */
    bool keep_first;
} cb_state;

static int on_step(void *user, const dhf_saved_step *s)
{
    cb_state *st = user;
    char name[64];
    st->n_calls++;
    if (s->step <= st->last_step)
        return dhf_err_set("callback out of step order");
    st->last_step = s->step;
    for (int l = 0; l < s->n_features; l++) {
        snprintf(name, sizeof name, "img%d/t%02d/layer%02d", st->img, s->label, l + 1);
        dhf_parity_check(st->r, s->feats[l], st->ref, name, name);
        if (st->keep_first && st->n_calls == 1) {
            dhf_clone(s->feats[l], &st->keep[l]);
            dhf_nn_unscope(st->keep[l]);   /* outlive the step's scope */
        }
    }
    return 0;
}

/* Runs one reference file (1-step or 50-step) for every image in it. */
static void run_file(const char *file, const char *stem, bool keep_img0,
                     dhf_tensor *kept_out)
{
    dhf_st_file *ref = NULL;
    if (dhf_st_open(parity_path(g_ref_dir, file), &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    const dhf_st_info *st_info = NULL;
    if (dhf_st_get(ref, "meta/save_timestep", &st_info) != 0)
        fail_msg("%s", dhf_err_msg());
    int n_save = (int)st_info->numel;
    int64_t labels[64];
    for (int k = 0; k < n_save; k++)
        labels[k] = read_i64(ref, "meta/save_timestep", k);
    const dhf_st_info *steps_info = NULL;
    assert_int_equal(dhf_st_get(ref, "meta/step_unet_timestep", &steps_info), 0);
    int N = (int)steps_info->numel;
    check_schedule(ref, N);
    /* save_step_index = N - 1 - label (the callback's step); the UNet timestep of
     * every saved label, as the cache records it before extracting */
    float unet_t[64], unet_t_ref[64];
    assert_int_equal(dhf_inversion_saved_timesteps(N, labels, n_save, unet_t), 0);
    assert_int_equal(dhf_st_read_f32(ref, "meta/unet_timestep_at_save", unet_t_ref,
                                     (size_t)n_save), 0);
    for (int k = 0; k < n_save; k++) {
        assert_int_equal(read_i64(ref, "meta/save_step_index", k), N - 1 - labels[k]);
        assert_float_equal(unet_t[k], unet_t_ref[k], 0);
    }

    dhf_tensor ctx = NULL;
    if (dhf_st_load(ref, "encoder_hidden_states", &ctx) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_parity_report r;
    dhf_parity_init(&r, g_tol, stem);
    int n_images = 0;
    double t0 = dhf_now();
    for (int k = 0; k < 10; k++) {
        char name[64];
        snprintf(name, sizeof name, "img%d/x0", k);
        if (!dhf_st_find(ref, name))
            break;
        n_images++;
        dhf_tensor x0 = NULL, xs = NULL, eps = NULL, xT = NULL;
        if (dhf_st_load(ref, name, &x0) != 0)
            fail_msg("%s", dhf_err_msg());
        cb_state cs = {.r = &r, .ref = ref, .img = k, .last_step = -1,
                       .keep_first = keep_img0 && k == 0};
        dhf_inversion_opts o = {.num_timesteps = N, .save_timestep = labels, .n_save = n_save,
                                .xs = &xs, .eps = &eps, .x_final = &xT};
        if (dhf_ddim_invert(g_unet, x0, ctx, &o, on_step, &cs) != 0)
            fail_msg("img%d: %s", k, dhf_err_msg());
        assert_int_equal(cs.n_calls, n_save);
        snprintf(name, sizeof name, "img%d/xs", k);
        dhf_parity_check(&r, xs, ref, name, name);
        snprintf(name, sizeof name, "img%d/eps", k);
        dhf_parity_check(&r, eps, ref, name, name);
        snprintf(name, sizeof name, "img%d/xT", k);
        dhf_parity_check(&r, xT, ref, name, name);
        if (cs.keep_first)
            for (int l = 0; l < dhf_unet_n_features(g_unet); l++)
                kept_out[l] = cs.keep[l];
        dhf_free(x0);
        dhf_free(xs);
        dhf_free(eps);
        dhf_free(xT);
    }
    double dt = dhf_now() - t0;
    printf("%s: %d images x %d steps in %.2f s (%.1f ms per UNet call)\n", file, n_images, N,
           dt, 1e3 * dt / (n_images * N));
    dhf_parity_print(&r, stdout);
    if (r.n_fail)
        printf("last error: %s\n", dhf_err_msg());
    assert_true(n_images >= 1);
    assert_int_equal(r.n_checked, n_images * (3 + n_save * dhf_unet_n_features(g_unet)));
    assert_int_equal(r.n_fail, 0);
    dhf_free(ctx);
    dhf_st_close(ref);
}

static void test_one_step_and_resize(void **state)
{
    (void)state;
    dhf_tensor feats[64] = {0};
    run_file("inversion_feats_1step.safetensors", "inversion_feats_1step", true, feats);

    dhf_st_file *ref = NULL;
    if (dhf_st_open(parity_path(g_ref_dir, "resized_concat.safetensors"), &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    int nf = dhf_unet_n_features(g_unet);
    /* channel offsets: cumulative feature widths */
    int64_t off = 0;
    for (int l = 0; l < nf; l++) {
        assert_int_equal(read_i64(ref, "meta/channel_offsets", l), off);
        off += dhf_size(feats[l], 1);
    }
    assert_int_equal(read_i64(ref, "meta/channel_offsets", nf), off);
    dhf_parity_report r;
    dhf_parity_init(&r, g_tol, "resized_concat");
    const dhf_st_info *res_info = NULL;
    assert_int_equal(dhf_st_get(ref, "meta/output_resolutions", &res_info), 0);
    for (int i = 0; i < (int)res_info->numel; i++) {
        int64_t R = read_i64(ref, "meta/output_resolutions", i);
        dhf_tensor cat = NULL;
        char name[64];
        if (dhf_resize_concat(feats, nf, R, &cat) != 0)
            fail_msg("%s", dhf_err_msg());
        snprintf(name, sizeof name, "onestep/img0/t00/res%lld", (long long)R);
        dhf_parity_check(&r, cat, ref, name, name);
        dhf_free(cat);
    }
    dhf_parity_print(&r, stdout);
    assert_int_equal(r.n_checked, (int)res_info->numel);
    assert_int_equal(r.n_fail, 0);
    for (int l = 0; l < nf; l++)
        dhf_free(feats[l]);
    dhf_st_close(ref);
}

static void test_fifty_steps(void **state)
{
    (void)state;
    run_file("inversion_feats.safetensors", "inversion_feats", false, NULL);
}

/* Without trace outputs the walk stops after the last saved step; the features of
 * the steps it does run are the same bits as in a full run. */
static void test_early_stop_same_features(void **state)
{
    (void)state;
    long live0 = dhf_live_tensors();
    dhf_st_file *ref = NULL;
    if (dhf_st_open(parity_path(g_ref_dir, "inversion_feats.safetensors"), &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_tensor ctx = NULL, x0 = NULL;
    assert_int_equal(dhf_st_load(ref, "encoder_hidden_states", &ctx), 0);
    assert_int_equal(dhf_st_load(ref, "img0/x0", &x0), 0);
    dhf_parity_report r;
    dhf_parity_init(&r, g_tol, "inversion_feats");
    int64_t labels[2] = {45, 49};   /* steps 4 and 0: only 5 UNet calls */
    cb_state cs = {.r = &r, .ref = ref, .img = 0, .last_step = -1};
    dhf_inversion_opts o = {.num_timesteps = 50, .save_timestep = labels, .n_save = 2};
    double t0 = dhf_now();
    assert_int_equal(dhf_ddim_invert(g_unet, x0, ctx, &o, on_step, &cs), 0);
    printf("early stop: 2 saved labels in %.3f s\n", dhf_now() - t0);
    assert_int_equal(cs.n_calls, 2);
    assert_int_equal(r.n_fail, 0);
    /* bad labels are rejected with the entry named */
    int64_t bad[1] = {50};
    o.save_timestep = bad;
    o.n_save = 1;
    assert_int_equal(dhf_ddim_invert(g_unet, x0, ctx, &o, on_step, &cs), -1);
    assert_non_null(strstr(dhf_err_msg(), "save_timestep[0]"));
    dhf_free(ctx);
    dhf_free(x0);
    dhf_st_close(ref);
    assert_int_equal(dhf_live_tensors(), live0);   /* nothing leaked, even on error */
}

int main(int argc, char **argv)
{
    int skip = parity_parse_args(argc, argv, DHF_FIXTURES_ROOT "/sd/models/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/refs/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/tolerances.json");
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_step_and_resize),
        cmocka_unit_test(test_fifty_steps),
        cmocka_unit_test(test_early_stop_same_features),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
