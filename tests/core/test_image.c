/* test_image.c — image decode/encode: PNG round trip (exact), JPEG round trip
 * (approximate), grey/grey+alpha/RGBA/palette/16-bit PNG and grey JPEG to RGB,
 * header-only sizes, and every failure mode (missing, empty, truncated, random
 * bytes, bad arguments) returning an error that names the path.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"

static char tmpdir[256];

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void make_gradient(dhf_image *img, int w, int h)
{
    assert_int_equal(dhf_image_alloc(img, w, h), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)((x + y) * 127 / (w + h - 2) + 64);
        }
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void truncate_copy(const char *src, const char *dst, long keep)
{
    char *data;
    size_t len;
    assert_int_equal(dhf_read_file(src, &data, &len), 0);
    assert_true((size_t)keep < len);
    write_bytes(dst, data, (size_t)keep);
    free(data);
}

static void expect_error_naming(const char *path, const char *fragment)
{
    const char *msg = dhf_err_msg();
    if (!strstr(msg, path) || (fragment && !strstr(msg, fragment)))
        fail_msg("error message '%s' should name '%s' and contain '%s'", msg, path,
                 fragment ? fragment : "");
}

/* Writes a PNG of the given libpng colour type/bit depth from raw rows. */
static void write_raw_png(const char *path, int w, int h, int color, int depth,
                          const uint8_t *data, size_t row_bytes, const png_color *palette,
                          int npal)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(data + (size_t)y * row_bytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* ---- round trips ----------------------------------------------------------- */

static void test_png_round_trip_exact(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "rt.png");
    dhf_image img, back;
    make_gradient(&img, 37, 23);
    assert_int_equal(dhf_image_save_png(path, &img), 0);
    assert_int_equal(dhf_image_load(path, &back), 0);
    assert_int_equal(back.width, 37);
    assert_int_equal(back.height, 23);
    assert_memory_equal(back.rgb, img.rgb, 37 * 23 * 3);
    int w = 0, h = 0;
    assert_int_equal(dhf_image_size(path, &w, &h), 0);
    assert_int_equal(w, 37);
    assert_int_equal(h, 23);
    dhf_image_free(&img);
    dhf_image_free(&back);
    assert_null(back.rgb);
}

static void test_jpeg_round_trip_approx(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "rt.jpg");
    dhf_image img, back;
    make_gradient(&img, 64, 48);
    assert_int_equal(dhf_image_save_jpeg(path, &img, 95), 0);
    assert_int_equal(dhf_image_load(path, &back), 0);
    assert_int_equal(back.width, 64);
    assert_int_equal(back.height, 48);
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < 64 * 48 * 3; i++) {
        int d = abs((int)back.rgb[i] - (int)img.rgb[i]);
        sum += d;
        if (d > worst)
            worst = d;
    }
    double mean = sum / (64 * 48 * 3);
    if (mean > 2.0 || worst > 24)
        fail_msg("JPEG q95 of a smooth gradient too lossy: mean %.3f max %d", mean, worst);
    int w = 0, h = 0;
    assert_int_equal(dhf_image_size(path, &w, &h), 0);
    assert_int_equal(w, 64);
    assert_int_equal(h, 48);
    dhf_image_free(&img);
    dhf_image_free(&back);
}

/* Detection is by content: a PNG named .jpg still loads. */
static void test_decode_by_magic_not_extension(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "really_png.jpg");
    dhf_image img, back;
    make_gradient(&img, 5, 4);
    assert_int_equal(dhf_image_save_png(path, &img), 0);
    assert_int_equal(dhf_image_load(path, &back), 0);
    assert_memory_equal(back.rgb, img.rgb, 5 * 4 * 3);
    dhf_image_free(&img);
    dhf_image_free(&back);
}

/* ---- colour conversions ------------------------------------------------------ */

static void test_png_grey_to_rgb(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "grey.png");
    const uint8_t grey[2 * 3] = {0, 100, 255, 7, 8, 9};
    write_raw_png(path, 3, 2, PNG_COLOR_TYPE_GRAY, 8, grey, 3, NULL, 0);
    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), 0);
    assert_int_equal(img.width, 3);
    assert_int_equal(img.height, 2);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(img.rgb[3 * i], grey[i]);
        assert_int_equal(img.rgb[3 * i + 1], grey[i]);
        assert_int_equal(img.rgb[3 * i + 2], grey[i]);
    }
    dhf_image_free(&img);
}

static void test_png_grey_alpha_to_rgb(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "grey_alpha.png");
    const uint8_t ga[2 * 2] = {50, 0, 200, 255}; /* (grey, alpha) x 2 */
    write_raw_png(path, 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, 4, NULL, 0);
    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), 0);
    const uint8_t want[6] = {50, 50, 50, 200, 200, 200}; /* alpha dropped, not composited */
    assert_memory_equal(img.rgb, want, 6);
    dhf_image_free(&img);
}

static void test_png_rgba_to_rgb(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "rgba.png");
    const uint8_t rgba[2 * 4] = {10, 20, 30, 0, 200, 150, 100, 128};
    write_raw_png(path, 2, 1, PNG_COLOR_TYPE_RGBA, 8, rgba, 8, NULL, 0);
    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), 0);
    const uint8_t want[6] = {10, 20, 30, 200, 150, 100};
    assert_memory_equal(img.rgb, want, 6);
    dhf_image_free(&img);
}

static void test_png_palette_to_rgb(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "palette.png");
    const png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {1, 2, 3}};
    const uint8_t idx[4] = {2, 0, 1, 2};
    write_raw_png(path, 4, 1, PNG_COLOR_TYPE_PALETTE, 8, idx, 4, pal, 3);
    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), 0);
    const uint8_t want[12] = {1, 2, 3, 255, 0, 0, 0, 255, 0, 1, 2, 3};
    assert_memory_equal(img.rgb, want, 12);
    dhf_image_free(&img);
}

static void test_png_16bit_to_8bit(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "rgb16.png");
    /* big-endian 16-bit samples: 0xFFFF -> 255, 0x8000 -> 128 (libpng rounds), 0 -> 0 */
    const uint8_t rgb16[6] = {0xff, 0xff, 0x80, 0x00, 0x00, 0x00};
    write_raw_png(path, 1, 1, PNG_COLOR_TYPE_RGB, 16, rgb16, 6, NULL, 0);
    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), 0);
    assert_int_equal(img.rgb[0], 255);
    assert_true(img.rgb[1] == 127 || img.rgb[1] == 128);
    assert_int_equal(img.rgb[2], 0);
    dhf_image_free(&img);
}

static void test_jpeg_grey_to_rgb(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "grey.jpg");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = 16;
    c.image_height = 8;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[16];
    memset(row, 90, sizeof row);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r[1] = {row};
        jpeg_write_scanlines(&c, r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);

    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), 0);
    assert_int_equal(img.width, 16);
    assert_int_equal(img.height, 8);
    for (int i = 0; i < 16 * 8; i++) {
        assert_int_equal(img.rgb[3 * i], img.rgb[3 * i + 1]);
        assert_int_equal(img.rgb[3 * i], img.rgb[3 * i + 2]);
        assert_true(abs((int)img.rgb[3 * i] - 90) <= 1);
    }
    dhf_image_free(&img);
}

/* ---- failures ---------------------------------------------------------------- */

static void test_missing_file(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "does_not_exist.jpg");
    dhf_image img = {1, 1, (uint8_t *)"x"};
    assert_int_equal(dhf_image_load(path, &img), -1);
    expect_error_naming(path, "cannot open");
    assert_null(img.rgb);
    int w, h;
    assert_int_equal(dhf_image_size(path, &w, &h), -1);
    expect_error_naming(path, NULL);
}

static void test_empty_file(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "empty.png");
    write_bytes(path, "", 0);
    dhf_image img;
    assert_int_equal(dhf_image_load(path, &img), -1);
    expect_error_naming(path, "empty");
}

static void test_truncated_jpeg(void **state)
{
    (void)state;
    char full[512], cut[512], cut_header[512];
    path_in_tmp(full, sizeof full, "full.jpg");
    path_in_tmp(cut, sizeof cut, "cut.jpg");
    path_in_tmp(cut_header, sizeof cut_header, "cut_header.jpg");
    dhf_image img;
    make_gradient(&img, 80, 60);
    assert_int_equal(dhf_image_save_jpeg(full, &img, 90), 0);
    dhf_image_free(&img);
    struct stat st;
    assert_int_equal(stat(full, &st), 0);

    truncate_copy(full, cut, (long)st.st_size * 2 / 3); /* inside the entropy-coded data */
    assert_int_equal(dhf_image_load(cut, &img), -1);
    expect_error_naming(cut, "truncated JPEG");
    assert_null(img.rgb);

    truncate_copy(full, cut_header, 40); /* inside the header */
    assert_int_equal(dhf_image_load(cut_header, &img), -1);
    expect_error_naming(cut_header, "JPEG");
    int w, h;
    assert_int_equal(dhf_image_size(cut_header, &w, &h), -1);
    expect_error_naming(cut_header, "JPEG");
}

static void test_truncated_png(void **state)
{
    (void)state;
    char full[512], cut[512], cut_header[512];
    path_in_tmp(full, sizeof full, "full.png");
    path_in_tmp(cut, sizeof cut, "cut.png");
    path_in_tmp(cut_header, sizeof cut_header, "cut_header.png");
    dhf_image img;
    make_gradient(&img, 80, 60);
    assert_int_equal(dhf_image_save_png(full, &img), 0);
    dhf_image_free(&img);
    struct stat st;
    assert_int_equal(stat(full, &st), 0);

    truncate_copy(full, cut, (long)st.st_size / 2);
    assert_int_equal(dhf_image_load(cut, &img), -1);
    expect_error_naming(cut, "PNG");
    assert_null(img.rgb);

    truncate_copy(full, cut_header, 20); /* magic + part of IHDR */
    assert_int_equal(dhf_image_load(cut_header, &img), -1);
    expect_error_naming(cut_header, "PNG");
}

static void test_random_bytes(void **state)
{
    (void)state;
    char path[512];
    uint8_t buf[4096];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    dhf_image img;
    /* plain noise, noise behind a JPEG magic, noise behind a PNG magic */
    static const uint8_t jpeg_magic[] = {0xff, 0xd8, 0xff, 0xe0};
    static const uint8_t png_magic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    for (int variant = 0; variant < 3; variant++) {
        for (int trial = 0; trial < 20; trial++) {
            for (size_t i = 0; i < sizeof buf; i++) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                buf[i] = (uint8_t)s;
            }
            if (variant == 0 && buf[0] == 0xff)
                buf[0] = 0; /* keep the plain-noise case magic-free */
            if (variant == 0 && buf[0] == 0x89)
                buf[0] = 0;
            if (variant == 1)
                memcpy(buf, jpeg_magic, sizeof jpeg_magic);
            if (variant == 2)
                memcpy(buf, png_magic, sizeof png_magic);
            snprintf(path, sizeof path, "%s/noise_%d_%d.bin", tmpdir, variant, trial);
            write_bytes(path, buf, sizeof buf);
            assert_int_equal(dhf_image_load(path, &img), -1);
            expect_error_naming(path, variant == 0 ? "not a JPEG or PNG" : NULL);
            assert_null(img.rgb);
        }
    }
}

static void test_save_errors(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "no_such_dir/out.png");
    dhf_image img;
    make_gradient(&img, 4, 4);
    assert_int_equal(dhf_image_save_png(path, &img), -1);
    expect_error_naming(path, NULL);
    assert_int_equal(dhf_image_save_jpeg(path, &img, 90), -1);
    path_in_tmp(path, sizeof path, "q.jpg");
    assert_int_equal(dhf_image_save_jpeg(path, &img, 0), -1);
    expect_error_naming(path, "quality");
    assert_int_equal(dhf_image_save_jpeg(path, &img, 101), -1);
    dhf_image empty = {0, 0, NULL};
    assert_int_equal(dhf_image_save_png(path, &empty), -1);
    expect_error_naming(path, "empty");
    dhf_image_free(&img);
    assert_false(dhf_path_exists(path));
}

/* Saves are atomic: no temp files are left behind in the directory. */
static void test_no_temp_files_left(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            fail_msg("temp file left behind: %s/%s", tmpdir, e->d_name);
    closedir(d);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dhf_test_image_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_round_trip_exact),
        cmocka_unit_test(test_jpeg_round_trip_approx),
        cmocka_unit_test(test_decode_by_magic_not_extension),
        cmocka_unit_test(test_png_grey_to_rgb),
        cmocka_unit_test(test_png_grey_alpha_to_rgb),
        cmocka_unit_test(test_png_rgba_to_rgb),
        cmocka_unit_test(test_png_palette_to_rgb),
        cmocka_unit_test(test_png_16bit_to_8bit),
        cmocka_unit_test(test_jpeg_grey_to_rgb),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_truncated_jpeg),
        cmocka_unit_test(test_truncated_png),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_no_temp_files_left),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_tmpdir();
    return rc;
}
