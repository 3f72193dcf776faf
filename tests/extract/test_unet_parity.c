/* test_unet_parity.c — one UNet call against diffusers v0.14 (unet_single.safetensors):
 * eps, the 12 DHF features, the full block outputs and every debug intermediate,
 * each within tolerances.json. Also checks the feature-shape helper against the
 * features actually produced. The reduced-precision mode (bfloat16 on CPUs with
 * AVX512-BF16, float16 on CUDA; else skipped with a message) is held to the same
 * float32 references with every tolerance multiplied by its factor below, and prints
 * its worst err/tol per group: the deviation as a multiple of the float32 tolerance.
 * Usage: test_unet_parity [--device D] [--dtype T] [MODEL_DIR [REF_DIR [TOLERANCES_JSON]]]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/torch/st_tensor.h"
#include "common/parity.h"
#include "extract/sd_model.h"
#include "extract/unet.h"
#include "extract/unet_kernels.h"
#include "common/parity_util.h"

/* The reduced-precision bounds, as multiples of the float32 tolerances (themselves 10x
 * float32 noise). bfloat16 keeps 8 mantissa bits: measured worst 2.07e3 (out/eps, CPU,
 * BENCHMARKS.md), bound 4000. float16 keeps 11: an eighth of that, bound 1000 with the
 * same headroom (CUDA only; scripts/gpu-check.sh reports the measured figure). */
#define BF16_TOL_FACTOR 4000.0
#define FP16_TOL_FACTOR 1000.0

static void run_unet_single(dhf_dtype dtype, double tol_factor, bool then_libtorch)
{
    dhf_tolerances *tol = NULL;
    dhf_unet *u = NULL;
    dhf_st_file *ref = NULL;
    const char *ref_path = parity_path(g_ref_dir, "unet_single.safetensors");
    if (dhf_tolerances_load(g_tol_path, &tol) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_model_placement pl;
    if (dhf_sd_placement_parse(g_device, "float32", &pl) != 0)
        fail_msg("%s", dhf_err_msg());
    pl.dtype = dtype;
    if (dhf_unet_load(parity_path(g_model_dir, "unet"), &pl, &u) != 0)
        fail_msg("%s", dhf_err_msg());
    if (dhf_st_open(ref_path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());

    dhf_tensor sample = NULL, ts = NULL, ctx = NULL, eps = NULL;
    if (dhf_st_load(ref, "in/sample", &sample) != 0 || dhf_st_load(ref, "in/timestep", &ts) != 0 ||
        dhf_st_load(ref, "in/encoder_hidden_states", &ctx) != 0)
        fail_msg("%s", dhf_err_msg());
    int B = (int)dhf_size(sample, 0);
    float tvals[16];
    assert_true(B <= 16);
    assert_int_equal(dhf_to_buffer(ts, DHF_F32, tvals, (size_t)B * sizeof(float)), DHF_OK);

    int nf = dhf_unet_n_features(u);
    assert_int_equal(nf, 12);
    dhf_tensor feats[64] = {0};
    dhf_unet_debug dbg;
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    dhf_kern_stats_reset();
    if (dhf_unet_forward(u, sample, tvals, ctx, &eps, feats, &dbg) != 0)
        fail_msg("forward: %s", dhf_err_msg());
    assert_int_equal(dhf_inference_end(), DHF_OK);

    dhf_parity_report r;
    dhf_parity_init(&r, tol, "unet_single");
    r.tol_factor = tol_factor;
    char name[64];
    dhf_parity_check(&r, eps, ref, "out/eps", "out/eps");
    for (int k = 0; k < nf; k++) {
        int64_t chw[3];
        assert_int_equal(dhf_unet_feature_shape(u, k, dhf_size(sample, 2), dhf_size(sample, 3),
                                                chw), 0);
        assert_int_equal(dhf_size(feats[k], 1), chw[0]);
        assert_int_equal(dhf_size(feats[k], 2), chw[1]);
        assert_int_equal(dhf_size(feats[k], 3), chw[2]);
        snprintf(name, sizeof name, "feat/layer%02d", k + 1);
        dhf_parity_check(&r, feats[k], ref, name, name);
        snprintf(name, sizeof name, "block/layer%02d", k + 1);
        dhf_parity_check(&r, dbg.blocks[k], ref, name, name);
    }
    dhf_parity_check(&r, dbg.t_sinusoid, ref, "dbg/t_sinusoid", "dbg/t_sinusoid");
    dhf_parity_check(&r, dbg.t_emb, ref, "dbg/t_emb", "dbg/t_emb");
    dhf_parity_check(&r, dbg.conv_in, ref, "dbg/conv_in", "dbg/conv_in");
    assert_int_equal(dbg.n_skips, 12);
    for (int i = 0; i < dbg.n_skips; i++) {
        snprintf(name, sizeof name, "dbg/skip%02d", i);
        dhf_parity_check(&r, dbg.skips[i], ref, name, name);
    }
    dhf_parity_check(&r, dbg.mid_out, ref, "dbg/mid_out", "dbg/mid_out");
    for (int i = 0; i < dbg.n_up; i++) {
        snprintf(name, sizeof name, "dbg/up%d_out", i);
        dhf_parity_check(&r, dbg.up_out[i], ref, name, name);
    }
    dhf_kern_stats ks;
    dhf_kern_stats_get(&ks);
    printf("%s on %s, %s kernels (convolutions: %ld oneDNN, %ld libtorch, %ld inputs made "
           "channels-last; GroupNorm: %ld fused, %ld libtorch; %ld Linear as 1x1 convolutions; %ld attention cores by query-row blocks):\n",
           dtype == DHF_BF16 ? "bfloat16" : dtype == DHF_F16 ? "float16" : "float32", g_device,
           dhf_kernels_active(), ks.conv_onednn, ks.conv_libtorch, ks.conv_relayout,
           ks.gn_fused, ks.gn_libtorch, ks.linear_1x1, ks.attn_rows);
    if (strcmp(dhf_kernels_active(), "onednn") == 0 && strcmp(g_device, "cpu") == 0) {
        /* the oneDNN path must really run the UNet's convolutions and norms, with the
         * activations channels-last from conv_in on (only the sample is relaid out) */
        assert_int_equal(ks.conv_libtorch, 0);
        assert_true(ks.conv_onednn > 0);
        assert_int_equal(ks.gn_libtorch, 0);
        assert_int_equal(ks.conv_relayout, 1);
        assert_true(ks.linear_1x1 > 0);
        assert_true(ks.attn_rows > 0);
    }
    dhf_parity_print(&r, stdout);
    if (r.n_fail)
        printf("last error: %s\n", dhf_err_msg());
    assert_int_equal(r.n_checked, 1 + 24 + 3 + 12 + 1 + 4);
    assert_int_equal(r.n_fail, 0);

    if (then_libtorch && ks.conv_onednn > 0) {
        /* the same model again on the libtorch path in the same process: every layer
         * whose OIHW weights the oneDNN path released gets them back (unpacked) */
        dhf_tensor eps2 = NULL;
        dhf_kernels_set(DHF_KERNELS_LIBTORCH);
        dhf_kern_stats_reset();
        assert_int_equal(dhf_inference_begin(), DHF_OK);
        int frc = dhf_unet_forward(u, sample, tvals, ctx, &eps2, NULL, NULL);
        assert_int_equal(dhf_inference_end(), DHF_OK);
        dhf_kernels_set(DHF_KERNELS_ONEDNN);
        if (frc != 0)
            fail_msg("forward on libtorch after oneDNN: %s", dhf_err_msg());
        dhf_kern_stats ks2;
        dhf_kern_stats_get(&ks2);
        dhf_parity_report r2;
        dhf_parity_init(&r2, tol, "unet_single");
        r2.tol_factor = tol_factor;
        dhf_parity_check(&r2, eps2, ref, "out/eps", "out/eps");
        printf("then libtorch in the same process (%ld convolutions restored to OIHW):\n",
               ks2.conv_libtorch);
        dhf_parity_print(&r2, stdout);
        assert_int_equal(ks2.conv_libtorch, ks.conv_onednn);
        assert_int_equal(r2.n_fail, 0);
        dhf_free(eps2);
    }

    for (int k = 0; k < nf; k++)
        dhf_free(feats[k]);
    dhf_unet_debug_free(&dbg);
    dhf_free(eps);
    dhf_free(sample);
    dhf_free(ts);
    dhf_free(ctx);
    dhf_st_close(ref);
    dhf_unet_free(u);
    dhf_tolerances_free(tol);
    assert_int_equal(dhf_live_tensors(), 0);
}

static void test_unet_single(void **state)
{
    (void)state;
    run_unet_single(DHF_F32, 1.0, true);
}

/* The reduced-precision mode: --dtype, else bfloat16 on the CPU (skipped without
 * AVX512-BF16) and float16 on CUDA. */
static void test_unet_single_reduced(void **state)
{
    (void)state;
    const char *dt = g_reduced_dtype[0] ? g_reduced_dtype
                     : strncmp(g_device, "cuda", 4) == 0 ? "float16" : "bfloat16";
    dhf_model_placement pl;
    if (dhf_sd_placement_parse(g_device, dt, &pl) != 0) {
        printf("%s: %s: skipped\n", dt, dhf_err_msg());
        skip();
    }
    double factor = pl.dtype == DHF_F16 ? FP16_TOL_FACTOR : BF16_TOL_FACTOR;
    printf("%s, tolerances x %.0f:\n", dt, factor);
    run_unet_single(pl.dtype, factor, false);
}

int main(int argc, char **argv)
{
    int skip = parity_parse_args(argc, argv, DHF_FIXTURES_ROOT "/sd/models/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/refs/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/tolerances.json");
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unet_single),
        cmocka_unit_test(test_unet_single_reduced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
