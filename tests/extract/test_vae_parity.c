/* test_vae_parity.c — image preprocessing and the VAE encoder against diffusers
 * v0.14 (vae_encode.safetensors): the decoded PNG equals rgb_u8; pixels, the
 * bilinear-resized input, moments, mean, clamped logvar and the scaled latent at
 * diffusion resolution, and the same encoder run on the un-resized image (native/).
 * Usage: test_vae_parity [MODEL_DIR [REF_DIR [TOLERANCES_JSON]]]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "core/error.h"
#include "core/image.h"
#include "core/image_resize.h"
#include "core/torch/st_tensor.h"
#include "extract/image_prep.h"
#include "common/parity.h"
#include "extract/vae.h"
#include "common/parity_util.h"

/* images/imgK_<W>x<H>.png */
static int find_image(int k, char *path, size_t n)
{
    char prefix[16];
    snprintf(prefix, sizeof prefix, "img%d_", k);
    const char *dir = parity_path(g_ref_dir, "images");
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = -1;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(path, n, "%s/%s", dir, e->d_name);
            rc = 0;
            break;
        }
    closedir(d);
    return rc;
}

static void check_posterior(dhf_parity_report *r, const dhf_vae *v, dhf_tensor input,
                            const dhf_st_file *ref, const char *prefix)
{
    dhf_vae_posterior post;
    dhf_tensor latent = NULL;
    char name[64];
    if (dhf_vae_encode(v, input, &post) != 0)
        fail_msg("%s encode: %s", prefix, dhf_err_msg());
    if (dhf_vae_latent(v, &post, DHF_LATENT_MEAN, 0, &latent) != 0)
        fail_msg("%s latent: %s", prefix, dhf_err_msg());
    snprintf(name, sizeof name, "%s/moments", prefix);
    dhf_parity_check(r, post.moments, ref, name, name);
    snprintf(name, sizeof name, "%s/mean", prefix);
    dhf_parity_check(r, post.mean, ref, name, name);
    snprintf(name, sizeof name, "%s/logvar", prefix);
    dhf_parity_check(r, post.logvar, ref, name, name);
    snprintf(name, sizeof name, "%s/latent", prefix);
    dhf_parity_check(r, latent, ref, name, name);
    dhf_free(latent);
    dhf_vae_posterior_free(&post);
}

static void test_vae_encode(void **state)
{
    (void)state;
    dhf_tolerances *tol = NULL;
    dhf_vae *v = NULL;
    dhf_st_file *ref = NULL;
    if (dhf_tolerances_load(g_tol_path, &tol) != 0)
        fail_msg("%s", dhf_err_msg());
    if (dhf_vae_load(parity_path(g_model_dir, "vae"), parity_placement(), &v) != 0)
        fail_msg("%s", dhf_err_msg());
    if (dhf_st_open(parity_path(g_ref_dir, "vae_encode.safetensors"), &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t size = 0;
    if (dhf_st_read_f32(ref, "meta/scaling_factor", &(float){0}, 1) != 0)
        fail_msg("%s", dhf_err_msg());
    {
        const dhf_st_info *info = NULL;
        if (dhf_st_get(ref, "meta/vae_input_size", &info) != 0)
            fail_msg("%s", dhf_err_msg());
        memcpy(&size, info->data, sizeof size);
    }
    float sf = 0;
    dhf_st_read_f32(ref, "meta/scaling_factor", &sf, 1);
    assert_float_equal(sf, (float)dhf_vae_config_of(v)->scaling_factor, 0);

    dhf_parity_report r;
    dhf_parity_init(&r, tol, "vae_encode");
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    int n_images = 0, n_pil = 0;
    for (int k = 0; k < 10; k++) {
        char prefix[32], name[64], png[4300];
        snprintf(name, sizeof name, "img%d/rgb_u8", k);
        const dhf_st_info *rgb_ref = dhf_st_find(ref, name);
        if (!rgb_ref)
            break;
        n_images++;
        if (find_image(k, png, sizeof png) != 0)
            fail_msg("%s: no img%d_*.png", parity_path(g_ref_dir, "images"), k);
        dhf_image img;
        if (dhf_image_load(png, &img) != 0)
            fail_msg("%s", dhf_err_msg());
        assert_int_equal(rgb_ref->shape[0], img.height);
        assert_int_equal(rgb_ref->shape[1], img.width);
        assert_memory_equal(rgb_ref->data, img.rgb, (size_t)img.width * img.height * 3);

        dhf_tensor pixels = NULL, input = NULL;
        if (dhf_rgb_to_pixels(img.rgb, img.width, img.height, &pixels) != 0 ||
            dhf_resize_bilinear(pixels, size, size, &input) != 0)
            fail_msg("%s", dhf_err_msg());
        snprintf(name, sizeof name, "img%d/pixels", k);
        dhf_parity_check(&r, pixels, ref, name, name);
        snprintf(name, sizeof name, "img%d/input", k);
        dhf_parity_check(&r, input, ref, name, name);
        /* the paper's real-image path (image_resize: pil): Pillow BILINEAR on the 8-bit
         * image, every byte as Pillow made it */
        snprintf(name, sizeof name, "img%d/input_pil_u8", k);
        const dhf_st_info *pil_ref = dhf_st_find(ref, name);
        if (pil_ref) {
            dhf_image small = { 0 };
            if (dhf_image_resize_pil(&img, size, size, DHF_RESAMPLE_BILINEAR, &small) != 0)
                fail_msg("%s", dhf_err_msg());
            assert_int_equal(pil_ref->nbytes, (uint64_t)size * size * 3);
            assert_memory_equal(pil_ref->data, small.rgb, (size_t)size * size * 3);
            dhf_image_free(&small);
            n_pil++;
        }
        snprintf(prefix, sizeof prefix, "img%d", k);
        check_posterior(&r, v, input, ref, prefix);
        snprintf(prefix, sizeof prefix, "img%d/native", k);
        check_posterior(&r, v, pixels, ref, prefix);
        dhf_free(pixels);
        dhf_free(input);
        dhf_image_free(&img);
    }
    assert_int_equal(dhf_inference_end(), DHF_OK);
    dhf_parity_print(&r, stdout);
    if (r.n_fail)
        printf("last error: %s\n", dhf_err_msg());
    assert_true(n_images >= 1);
    assert_int_equal(r.n_checked, n_images * 10);
    printf("[ info ] Pillow BILINEAR to %dx%d: %d of %d images byte-identical to the "
           "fixture's input_pil_u8\n", (int)size, (int)size, n_pil, n_images);
    assert_int_equal(n_pil, n_images);
    assert_int_equal(r.n_fail, 0);
    dhf_st_close(ref);
    dhf_vae_free(v);
    dhf_tolerances_free(tol);
    assert_int_equal(dhf_live_tensors(), 0);
}

/* SAMPLE latents: seeded (same seed -> same bits), different seeds differ, and the
 * sample is mean + std * noise (so it stays near the mean for a tiny logvar). */
static void test_vae_sample_seeded(void **state)
{
    (void)state;
    dhf_vae *v = NULL;
    if (dhf_vae_load(parity_path(g_model_dir, "vae"), parity_placement(), &v) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t shape[4] = {1, 3, 64, 64};
    dhf_tensor px = NULL, a = NULL, b = NULL, c = NULL;
    assert_int_equal(dhf_rand(5, DHF_F32, shape, 4, &px), DHF_OK);
    dhf_vae_posterior post;
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    assert_int_equal(dhf_vae_encode(v, px, &post), 0);
    assert_int_equal(dhf_vae_latent(v, &post, DHF_LATENT_SAMPLE, 11, &a), 0);
    assert_int_equal(dhf_vae_latent(v, &post, DHF_LATENT_SAMPLE, 11, &b), 0);
    assert_int_equal(dhf_vae_latent(v, &post, DHF_LATENT_SAMPLE, 12, &c), 0);
    assert_int_equal(dhf_inference_end(), DHF_OK);
    double dab = -1, dac = -1;
    assert_int_equal(dhf_max_abs_diff(a, b, &dab), DHF_OK);
    assert_int_equal(dhf_max_abs_diff(a, c, &dac), DHF_OK);
    assert_true(dab == 0.0);
    assert_true(dac > 0.0);
    assert_int_equal(dhf_size(a, 2), 8);
    dhf_free(px);
    dhf_free(a);
    dhf_free(b);
    dhf_free(c);
    dhf_vae_posterior_free(&post);
    dhf_vae_free(v);
}

int main(int argc, char **argv)
{
    int skip = parity_parse_args(argc, argv, DHF_FIXTURES_ROOT "/sd/models/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/refs/tiny-sd15",
                                 DHF_FIXTURES_ROOT "/sd/tolerances.json");
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_encode),
        cmocka_unit_test(test_vae_sample_seeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
