/* test_image_resize.c — Pillow-exact resizing (core/image_resize.h) and decoding
 * against Pillow 9.4.0's own outputs (fixtures/pil). Usage: test_image_resize [PIL_DIR]
 * (default ../shared/fixtures/pil; exits 77 when it is absent and none is given).
 *   - decoding: every source file (RGB, grayscale and CMYK JPEGs, RGBA and palette
 *     PNGs) through dhf_image_load against `Image.open(f).convert("RGB")`: every byte
 *     equal (Debian's libjpeg-turbo with its default IDCT and upsampling, as Pillow
 *     uses it; CMYK in Pillow's inverted-ink convention and cmyk2rgb rounding);
 *   - resizing: the reference RGB of each source through dhf_image_resize_pil
 *     (BILINEAR) against `.resize((W, H), Image.BILINEAR)`: every byte equal.
 * Plus hand-made cases that need no fixture: same size is a copy, a one-axis resize,
 * constant images stay constant, bad sizes are refused.
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/image_resize.h"
#include "core/safetensors.h"

static char g_dir[4096] = "../shared/fixtures/pil";

static const char *path_in(const char *name)
{
    static char buf[2][4200];
    static int next;
    char *b = buf[next++ % 2];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

/* the fixture's uint8 HWC tensor `name` as an image (pixels copied) */
static void ref_image(const dhf_st_file *st, const char *name, dhf_image *img)
{
    const dhf_st_info *t = NULL;
    if (dhf_st_get(st, name, &t))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(t->dtype, DHF_ST_U8);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[2], 3);
    assert_int_equal(dhf_image_alloc(img, (int)t->shape[1], (int)t->shape[0]), 0);
    memcpy(img->rgb, t->data, (size_t)t->nbytes);
}

static void test_pillow_fixture(void **state)
{
    (void)state;
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(dhf_read_file(path_in("cases.json"), &text, &n), 0);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    dhf_st_file *st = NULL;
    if (dhf_st_open(path_in("pil_resize.safetensors"), &st))
        fail_msg("%s", dhf_err_msg());
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    int n_sources = 0, n_resized = 0;
    cJSON_ArrayForEach(c, cases)
    {
        const char *key = cJSON_GetObjectItem(c, "key")->valuestring;
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
        const char *mode = cJSON_GetObjectItem(c, "mode_saved")->valuestring;
        const char *format = cJSON_GetObjectItem(c, "format")->valuestring;
        char name[256];
        dhf_image ref = { 0 }, got = { 0 };
        snprintf(name, sizeof name, "%s/rgb", key);
        ref_image(st, name, &ref);

        /* decoding */
        if (dhf_image_load(path_in(file), &got))
            fail_msg("%s", dhf_err_msg());
        assert_int_equal(got.width, ref.width);
        assert_int_equal(got.height, ref.height);
        const size_t bytes = (size_t)ref.width * ref.height * 3;
        size_t differ = 0;
        int worst = 0;
        for (size_t i = 0; i < bytes; i++) {
            const int d = abs((int)got.rgb[i] - (int)ref.rgb[i]);
            differ += d != 0;
            worst = d > worst ? d : worst;
        }
        printf("[ info ] decode %-28s %-4s %-4s: %zu of %zu bytes differ, max %d\n", file,
               format, mode, differ, bytes, worst);
        if (worst != 0)
            fail_msg("%s: %zu decoded bytes differ from Pillow's, by up to %d", file, differ,
                     worst);
        dhf_image_free(&got);

        /* resizing */
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(c, "sizes"))
        {
            int w = 0, h = 0;
            assert_int_equal(sscanf(s->valuestring, "%dx%d", &w, &h), 2);
            dhf_image want = { 0 }, out = { 0 };
            snprintf(name, sizeof name, "%s/resize_%s", key, s->valuestring);
            ref_image(st, name, &want);
            assert_int_equal(want.width, w);
            assert_int_equal(want.height, h);
            if (dhf_image_resize_pil(&ref, w, h, DHF_RESAMPLE_BILINEAR, &out))
                fail_msg("%s", dhf_err_msg());
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < (size_t)w * h * 3; i++)
                if (out.rgb[i] != want.rgb[i] && bad++ == 0)
                    first = i;
            if (bad)
                fail_msg("%s %dx%d -> %s: %zu bytes differ from Pillow (first at byte %zu: "
                         "%d vs %d)", key, ref.width, ref.height, s->valuestring, bad, first,
                         out.rgb[first], want.rgb[first]);
            dhf_image_free(&out);
            dhf_image_free(&want);
            n_resized++;
        }
        dhf_image_free(&ref);
        n_sources++;
    }
    printf("[ info ] %d sources decoded, %d resizes byte-identical to Pillow 9.4.0\n", n_sources,
           n_resized);
    assert_true(n_sources >= 9);
    assert_true(n_resized >= 36);
    dhf_st_close(st);
    cJSON_Delete(root);
}

static void fill(dhf_image *img, int w, int h, unsigned seed)
{
    assert_int_equal(dhf_image_alloc(img, w, h), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        img->rgb[i] = (uint8_t)(seed >> 16);
    }
}

/* Cases that need no fixture. */
static void test_hand_cases(void **state)
{
    (void)state;
    dhf_image a = { 0 }, b = { 0 };
    fill(&a, 13, 7, 1);
    /* the same size is a copy */
    assert_int_equal(dhf_image_resize_pil(&a, 13, 7, DHF_RESAMPLE_BILINEAR, &b), 0);
    assert_memory_equal(a.rgb, b.rgb, 13 * 7 * 3);
    dhf_image_free(&b);
    /* only the width changes: each row on its own, rows unchanged in number */
    assert_int_equal(dhf_image_resize_pil(&a, 26, 7, DHF_RESAMPLE_BILINEAR, &b), 0);
    assert_int_equal(b.width, 26);
    assert_int_equal(b.height, 7);
    /* 2x bilinear upscaling: output column 0 has centre 0.25, its taps run from
     * int(0.25 - 1 + 0.5) = 0 to int(0.25 + 1 + 0.5) = 1 (exclusive): input column 0
     * alone, its weight renormalised to 1, so the column is copied exactly */
    for (int y = 0; y < 7; y++)
        for (int ch = 0; ch < 3; ch++)
            assert_int_equal(b.rgb[(size_t)y * 26 * 3 + ch], a.rgb[(size_t)y * 13 * 3 + ch]);
    dhf_image_free(&b);
    /* a constant image stays constant under every filter and size */
    dhf_image k = { 0 };
    assert_int_equal(dhf_image_alloc(&k, 9, 11), 0);
    memset(k.rgb, 173, 9 * 11 * 3);
    for (int f = DHF_RESAMPLE_BILINEAR; f <= DHF_RESAMPLE_LANCZOS; f++) {
        const int sizes[3][2] = { { 4, 3 }, { 31, 17 }, { 9, 40 } };
        for (int s = 0; s < 3; s++) {
            assert_int_equal(
                dhf_image_resize_pil(&k, sizes[s][0], sizes[s][1], (dhf_resample_filter)f, &b), 0);
            for (size_t i = 0; i < (size_t)sizes[s][0] * sizes[s][1] * 3; i++)
                assert_int_equal(b.rgb[i], 173);
            dhf_image_free(&b);
        }
    }
    dhf_image_free(&k);
    /* refused */
    assert_int_equal(dhf_image_resize_pil(&a, 0, 5, DHF_RESAMPLE_BILINEAR, &b), -1);
    assert_non_null(strstr(dhf_err_msg(), "at least 1"));
    assert_int_equal(dhf_image_resize_pil(&a, 5, 5, (dhf_resample_filter)7, &b), -1);
    dhf_image_free(&a);
}

int main(int argc, char **argv)
{
    struct stat sb;
    if (argc > 1)
        snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    const bool have = stat(g_dir, &sb) == 0;
    const struct CMUnitTest with_fixture[] = {
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_pillow_fixture),
    };
    const struct CMUnitTest without[] = {
        cmocka_unit_test(test_hand_cases),
    };
    if (!have && argc > 1) {
        fprintf(stderr, "%s: %s is absent\n", argv[0], g_dir);
        return 1;
    }
    if (!have)
        fprintf(stderr, "%s: %s is absent: the Pillow fixture cases are skipped\n", argv[0],
                g_dir);
    return have ? cmocka_run_group_tests(with_fixture, NULL, NULL)
                : cmocka_run_group_tests(without, NULL, NULL);
}
