/* test_extract_parity.c — the whole extraction path against the paper's references:
 * an image list -> dhf_extract_run (image decode, VAE mean latent, DDIM inversion,
 * HDF5 cache in float32) -> dhf_cache_export_image (safetensors) compared with
 * inversion_feats_1step and inversion_feats (50 steps), all three images, under
 * tolerances.json; and the raw-feature providers: "concat" against resized_concat
 * (res16 = the finest layer's size) and "layer:N" against the exported map.
 * Usage: test_extract_parity [MODEL_DIR [REF_DIR [TOLERANCES_JSON]]]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"
#include "cache/cache_export.h"
#include "extract/extract_run.h"
#include "cache/feature_cache.h"
#include "common/parity.h"
#include "cache/provider_cache.h"
#include "common/parity_util.h"
#include "common/tmpdir_util.h"

static dhf_tolerances *g_tol;
static char *g_tmp;
static const char *const g_images[3] = {"img0_96x80.png", "img1_200x144.png",
                                        "img2_64x104.png"};

/* The fixture image i (not via nested parity_path calls: they share buffers). */
static const char *image_path(int i)
{
    static char buf[4][4300];
    char rel[4300], *b = buf[i % 4];
    snprintf(rel, sizeof rel, "%s/images/%s", g_ref_dir, g_images[i]);
    /* Absolute: list lines are relative to the list file's folder. */
    if (!realpath(rel, b))
        snprintf(b, sizeof buf[0], "%s", rel);
    return b;
}

static int setup(void **state)
{
    (void)state;
    /* Tiny tensors: extra threads only spin on a busy machine. */
    dhf_set_num_threads(1);
    g_tmp = tmp_make_dir("extract_parity");
    if (!g_tmp || dhf_tolerances_load(g_tol_path, &g_tol) != 0) {
        fprintf(stderr, "setup: %s\n", dhf_err_msg());
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        const char *p = image_path(i);
        if (!parity_path_exists(p)) {
            fprintf(stderr, "setup: fixture image %s is missing\n", p);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dhf_tolerances_free(g_tol);
    if (g_tmp)
        tmp_remove_tree(g_tmp);
    free(g_tmp);
    return 0;
}

static void set(dhf_config *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (dhf_config_set(c, buf) != 0)
        fail_msg("--set %s: %s", buf, dhf_err_msg());
}

/* Extracts the first n_images fixture images into <tmp>/<name>.h5. */
static void extract(const char *name, int n_images, int num_timesteps, const char *labels,
                    char *cache_path, size_t cap)
{
    char list[4200];
    snprintf(list, sizeof list, "%s/%s.txt", g_tmp, name);
    FILE *f = fopen(list, "w");
    assert_non_null(f);
    for (int i = 0; i < n_images; i++)
        fprintf(f, "%s\n", image_path(i));
    assert_int_equal(fclose(f), 0);
    snprintf(cache_path, cap, "%s/%s.h5", g_tmp, name);
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    set(&cfg, "model_id=%s", g_model_dir);
    set(&cfg, "prompt_embeds=%s", parity_path(g_ref_dir, "encoder_hidden_states.safetensors"));
    set(&cfg, "vae_latent=mean");
    set(&cfg, "cache_dtype=float32");
    set(&cfg, "diffusion_resolution=128");
    /* the fixture's latents come from the extractor's float interpolate (its 4.1) */
    set(&cfg, "image_resize=torch");
    set(&cfg, "num_timesteps=%d", num_timesteps);
    set(&cfg, "save_timestep=%s", labels);
    set(&cfg, "image_list=%s", list);
    set(&cfg, "cache_path=%s", cache_path);
    if (dhf_config_validate(&cfg) != 0)
        fail_msg("config: %s", dhf_err_msg());
    dhf_extract_options opt = {.shard = {0, 1}};
    dhf_extract_summary sum;
    if (dhf_extract_run(&cfg, &opt, &sum) != 0)
        fail_msg("extract: %s", dhf_err_msg());
    assert_int_equal(sum.extracted, n_images);
    assert_int_equal(sum.cache_committed, n_images);
}

/* Exports image i of the cache and checks every t{k}/layer{ll} against
 * img{i}/t{label}/layer{ll} of the reference file. */
static void compare_image(dhf_feature_cache *c, int i, const char *ref_stem,
                          dhf_parity_report *rep)
{
    char key[300], out[4200], ref_path[4200];
    snprintf(key, sizeof key, "images/%s", g_images[i]);
    snprintf(out, sizeof out, "%s/export_%s_img%d.safetensors", g_tmp, ref_stem, i);
    snprintf(ref_path, sizeof ref_path, "%s/%s.safetensors", g_ref_dir, ref_stem);
    int n = 0;
    if (dhf_cache_export_image(c, key, out, &n) != 0)
        fail_msg("export: %s", dhf_err_msg());
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    assert_int_equal(n, l->num_steps * l->num_layers);
    dhf_st_file *exp = NULL, *ref = NULL;
    if (dhf_st_open(out, &exp) != 0 || dhf_st_open(ref_path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_string_equal(dhf_st_metadata_get(exp, "key"), key);
    assert_non_null(dhf_st_metadata_get(exp, "unet_timesteps"));
    for (int k = 0; k < l->num_steps; k++)
        for (int ly = 0; ly < l->num_layers; ly++) {
            char cand_name[64], ref_name[64];
            snprintf(cand_name, sizeof cand_name, "t%d/layer%02d", k, ly + 1);
            snprintf(ref_name, sizeof ref_name, "img%d/t%02lld/layer%02d", i,
                     (long long)l->save_label[k], ly + 1);
            dhf_tensor t = NULL;
            if (dhf_st_load(exp, cand_name, &t) != 0)
                fail_msg("%s", dhf_err_msg());
            if (dhf_parity_check(rep, t, ref, ref_name, ref_name) < 0)
                print_error("%s\n", dhf_err_msg());
            dhf_free(t);
        }
    dhf_st_close(exp);
    dhf_st_close(ref);
}

static void test_one_step_cache_and_providers(void **state)
{
    (void)state;
    char cache_path[4200];
    extract("onestep", 3, 1, "[0]", cache_path, sizeof cache_path);
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(cache_path, 1, &c) != 0)
        fail_msg("%s", dhf_err_msg());
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    assert_int_equal(l->num_steps, 1);
    assert_int_equal(l->num_layers, 12);
    assert_true(l->unet_timestep[0] == -1);
    assert_string_equal(l->model_name, "tiny-sd15");
    dhf_parity_report rep;
    dhf_parity_init(&rep, g_tol, "inversion_feats_1step");
    for (int i = 0; i < 3; i++)
        compare_image(c, i, "inversion_feats_1step", &rep);
    dhf_parity_print(&rep, stderr);
    assert_int_equal(rep.n_checked, 36);
    assert_int_equal(rep.n_fail, 0);
    assert_int_equal(dhf_cache_close(c), 0);

    /* SD-Concat-All: the concat provider at the finest layer's size (16x16 here) is
     * DHF's collect_and_resize_feats at R = 16. */
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    set(&cfg, "cache_path=%s", cache_path);
    dhf_provider_args args = {.arg = NULL, .cfg = &cfg};
    dhf_provider prov;
    if (dhf_provider_concat_open(&args, &prov) != 0)
        fail_msg("%s", dhf_err_msg());
    char key[300];
    snprintf(key, sizeof key, "images/%s", g_images[0]);
    dhf_provider_input in = {.key = key, .width = 96, .height = 80, .load_size = 64,
                             .resize = DHF_RESIZE_STRETCH};
    dhf_descriptors d;
    if (prov.describe(prov.ctx, &in, &d) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(d.h, 16);
    assert_int_equal(d.w, 16);
    int64_t shape[4] = {1, d.c, d.h, d.w};
    dhf_tensor t = NULL;
    assert_int_equal(dhf_from_buffer(d.data, DHF_F32, shape, 4, &t), DHF_OK);
    dhf_st_file *ref = NULL;
    if (dhf_st_open(parity_path(g_ref_dir, "resized_concat.safetensors"), &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_parity_init(&rep, g_tol, "resized_concat");
    assert_int_equal(dhf_parity_check(&rep, t, ref, "onestep/img0/t00/res16",
                                      "onestep/img0/t00/res16"), 0);
    dhf_parity_print(&rep, stderr);
    dhf_st_close(ref);
    dhf_free(t);
    free(d.data);
    /* Pad framing is refused (the features cover the stretched image). */
    in.resize = DHF_RESIZE_PAD;
    assert_int_equal(prov.describe(prov.ctx, &in, &d), -1);
    assert_non_null(strstr(dhf_err_msg(), "stretch"));
    dhf_provider_close(&prov);

    /* SD-Layer-4: the native map of layer 4 = 2nd up block's first ResNet. */
    args.arg = "4";
    if (dhf_provider_layer_open(&args, &prov) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_string_equal(prov.name, "layer:4@0");
    in.resize = DHF_RESIZE_STRETCH;
    if (prov.describe(prov.ctx, &in, &d) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(d.c, 64);
    assert_int_equal(d.h, 4);
    assert_int_equal(d.w, 4);
    dhf_st_file *exp = NULL;
    char out[4200];
    snprintf(out, sizeof out, "%s/export_inversion_feats_1step_img0.safetensors", g_tmp);
    assert_int_equal(dhf_st_open(out, &exp), 0);
    float want[64 * 16];
    assert_int_equal(dhf_st_read_f32(exp, "t0/layer04", want, 64 * 16), 0);
    assert_memory_equal(d.data, want, sizeof want);
    dhf_st_close(exp);
    free(d.data);
    /* A key the cache lacks, a size mismatch, a bad argument: errors. */
    in.key = "images/absent.png";
    assert_int_equal(prov.describe(prov.ctx, &in, &d), -1);
    assert_non_null(strstr(dhf_err_msg(), "not in the cache"));
    in.key = key;
    in.width = 97;
    assert_int_equal(prov.describe(prov.ctx, &in, &d), -1);
    assert_non_null(strstr(dhf_err_msg(), "96x80"));
    dhf_provider_close(&prov);
    args.arg = "13";
    assert_int_equal(dhf_provider_layer_open(&args, &prov), -1);
    args.arg = "4@7";
    assert_int_equal(dhf_provider_layer_open(&args, &prov), -1);
    assert_non_null(strstr(dhf_err_msg(), "label 7 is not cached"));
}

static void test_fifty_steps(void **state)
{
    (void)state;
    char cache_path[4200];
    extract("fifty", 3, 50, "[49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0]", cache_path,
            sizeof cache_path);
    dhf_feature_cache *c = NULL;
    if (dhf_cache_open_read(cache_path, 1, &c) != 0)
        fail_msg("%s", dhf_err_msg());
    const dhf_cache_layout *l = dhf_cache_get_layout(c);
    const double want_t[11] = {-1, 60, 160, 260, 360, 460, 560, 660, 760, 860, 960};
    assert_int_equal(l->num_steps, 11);
    for (int k = 0; k < 11; k++)
        assert_true(l->unet_timestep[k] == want_t[k]);
    dhf_parity_report rep;
    dhf_parity_init(&rep, g_tol, "inversion_feats");
    for (int i = 0; i < 3; i++)
        compare_image(c, i, "inversion_feats", &rep);
    dhf_parity_print(&rep, stderr);
    assert_int_equal(rep.n_checked, 3 * 132);
    assert_int_equal(rep.n_fail, 0);
    assert_int_equal(dhf_cache_close(c), 0);
}

int main(int argc, char **argv)
{
    int skip = parity_parse_args(argc, argv, DHF_FIXTURES_ROOT "/sd/models/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/refs/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/tolerances.json");
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_step_cache_and_providers),
        cmocka_unit_test(test_fifty_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
