/* test_feature_cache.c — the HDF5 feature cache: float16 rounding, the HDF5 half
 * type, create/append/commit/reopen/read-back in both dtypes, a real kill -9 in
 * the middle of an image followed by a resume, bad files, merging (and refusing
 * mismatched inputs), shard selection, the writer lock and shim tensor reads.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "cache/feature_cache.h"
#include "cache/feature_cache_tensor.h"
#include "cache/h5_util.h"
#include "cache/half_float.h"
#include "cache/model_identity.h"
#include "cache/shard.h"

#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[16][512];   /* a ring: a test holds at most a few at once */
    static int i;
    i = (i + 1) % 16;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dhf_test_cache_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- float16 ---------------------------------------------------------------- */

static void test_half_known_values(void **state)
{
    (void)state;
    assert_int_equal(dhf_half_from_float(0.0f), 0x0000);
    assert_int_equal(dhf_half_from_float(-0.0f), 0x8000);
    assert_int_equal(dhf_half_from_float(1.0f), 0x3c00);
    assert_int_equal(dhf_half_from_float(-2.0f), 0xc000);
    assert_int_equal(dhf_half_from_float(0.5f), 0x3800);
    assert_int_equal(dhf_half_from_float(0.1f), 0x2e66);      /* 0.0999755859375 */
    assert_int_equal(dhf_half_from_float(65504.0f), 0x7bff);  /* largest finite */
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (down). */
    assert_int_equal(dhf_half_from_float(1.0f + ldexpf(1, -11)), 0x3c00);
    /* 1 + 3*2^-11 is halfway between 0x3c01 and 0x3c02: ties to even (up). */
    assert_int_equal(dhf_half_from_float(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    /* Just above the tie goes up. */
    assert_int_equal(dhf_half_from_float(bits_f32(0x3f801001)), 0x3c01);
    /* Overflow: 65519 rounds to 65504, 65520 (the tie, odd mantissa) to inf. */
    assert_int_equal(dhf_half_from_float(65519.0f), 0x7bff);
    assert_int_equal(dhf_half_from_float(65520.0f), 0x7c00);
    assert_int_equal(dhf_half_from_float(-1e9f), 0xfc00);
    assert_int_equal(dhf_half_from_float(INFINITY), 0x7c00);
    assert_int_equal(dhf_half_from_float(-INFINITY), 0xfc00);
    uint16_t n = dhf_half_from_float(NAN);
    assert_int_equal(n & 0x7c00, 0x7c00);
    assert_int_not_equal(n & 0x03ff, 0);
    /* A NaN whose payload is only in the low 13 bits must stay a NaN. */
    n = dhf_half_from_float(bits_f32(0xff800001));
    assert_int_equal(n & 0xfc00, 0xfc00);
    assert_int_not_equal(n & 0x03ff, 0);
    /* Subnormals: unit 2^-24. */
    assert_int_equal(dhf_half_from_float(ldexpf(1, -24)), 0x0001);
    assert_int_equal(dhf_half_from_float(ldexpf(1, -25)), 0x0000);      /* tie -> 0 */
    assert_int_equal(dhf_half_from_float(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(dhf_half_from_float(ldexpf(3, -25)), 0x0002);      /* 1.5 units: tie -> 2 */
    assert_int_equal(dhf_half_from_float(ldexpf(5, -25)), 0x0002);      /* 2.5 units: tie -> 2 */
    assert_int_equal(dhf_half_from_float(-ldexpf(1023, -24)), 0x83ff);
    assert_int_equal(dhf_half_from_float(ldexpf(1, -14)), 0x0400);      /* min normal */
    /* 1023.5 units: tie between 0x03ff and 0x0400 -> even 0x0400 (carry to normal). */
    assert_int_equal(dhf_half_from_float(ldexpf(2047, -25)), 0x0400);
    assert_int_equal(dhf_half_from_float(1e-10f), 0x0000);
    assert_int_equal(dhf_half_from_float(-1e-10f), 0x8000);

    assert_true(dhf_half_to_float(0x0001) == ldexpf(1, -24));
    assert_true(dhf_half_to_float(0x03ff) == ldexpf(1023, -24));
    assert_true(dhf_half_to_float(0x7bff) == 65504.0f);
    assert_true(dhf_half_to_float(0xc000) == -2.0f);
    assert_true(isinf(dhf_half_to_float(0xfc00)) && dhf_half_to_float(0xfc00) < 0);
    assert_true(isnan(dhf_half_to_float(0x7e00)));
}

static void test_half_roundtrip_all(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dhf_half_to_float((uint16_t)h);
        if (isnan(f))
            continue;
        assert_int_equal(dhf_half_from_float(f), h);
    }
}

/* HDF5's own (independent) conversion of our half type must agree with ours. */
static void test_h5_half_type(void **state)
{
    (void)state;
    hid_t t = dhf_h5_half_type();
    assert_true(t >= 0);
    assert_true(dhf_h5_is_half_type(t));
    assert_int_equal(H5Tget_size(t), 2);
    assert_int_equal(H5Tget_precision(t), 16);
    assert_int_equal(H5Tget_ebias(t), 15);
    assert_false(dhf_h5_is_half_type(H5T_IEEE_F32LE));
    uint16_t *bits = malloc(65536 * 4);
    for (uint32_t h = 0; h < 65536; h++)
        bits[h] = (uint16_t)h;
    assert_true(H5Tconvert(t, H5T_NATIVE_FLOAT, 65536, bits, NULL, H5P_DEFAULT) >= 0);
    const float *conv = (const float *)bits;
    for (uint32_t h = 0; h < 65536; h++) {
        float mine = dhf_half_to_float((uint16_t)h);
        if (isnan(mine))
            assert_true(isnan(conv[h]));
        else
            assert_memory_equal(&mine, &conv[h], 4);
    }
    free(bits);
    H5Tclose(t);
}

/* ---- a small synthetic layout --------------------------------------------------- */

static void make_layout(dhf_cache_layout *l, dhf_cache_dtype dt, int compression,
                        const char *identity)
{
    dhf_cache_layout_init(l);
    l->num_layers = 3;
    const int64_t shapes[3][3] = {{4, 2, 3}, {3, 4, 6}, {2, 8, 12}};
    for (int i = 0; i < 3; i++) {
        snprintf(l->layer_name[i], DHF_CACHE_NAME_LEN, "up_blocks.%d.resnets.0", i);
        memcpy(l->layer_chw[i], shapes[i], sizeof shapes[i]);
    }
    l->num_steps = 2;
    l->unet_timestep[0] = -1;
    l->unet_timestep[1] = 60;
    l->save_label[0] = 49;
    l->save_label[1] = 45;
    l->dtype = dt;
    l->compression = compression;
    snprintf(l->model_name, sizeof l->model_name, "tiny-test");
    snprintf(l->model_hash, sizeof l->model_hash, "fnv1a64:0123456789abcdef");
    l->config_json = "{\"model_id\":\"/models/tiny-test\",\"threads\":2}";
    l->identity_json = identity ? identity : "{\"num_timesteps\":50,\"vae_latent\":\"mean\"}";
}

/* Deterministic, image/step/layer-dependent values with a range that exercises
 * float16 rounding (and a smooth part that compresses). */
static float value_at(int image, int step, int layer, size_t i)
{
    return (float)(image * 1000 + step * 100 + layer * 10) + 0.001f * (float)i +
           (float)sin((double)i * 0.37) * 0.3f;
}

static void fill_map(float *buf, size_t n, int image, int step, int layer)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = value_at(image, step, layer, i);
}

static dhf_cache_image image_named(const char *key)
{
    dhf_cache_image im;
    memset(&im, 0, sizeof im);
    snprintf(im.key, sizeof im.key, "%s", key);
    snprintf(im.path, sizeof im.path, "/data/%s.jpg", key);
    im.width = 100 + (int)strlen(key);
    im.height = 50;
    return im;
}

/* Writes all maps of image number `image_id` into `row` and commits. */
static void write_image_id(dhf_feature_cache *c, int64_t row, int image_id)
{
    float buf[2 * 8 * 12];
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 3; l++) {
            size_t n = dhf_cache_map_numel(c, l);
            fill_map(buf, n, image_id, s, l);
            assert_int_equal(dhf_cache_write_map(c, row, s, l, buf, n), 0);
        }
    assert_int_equal(dhf_cache_commit(c, row), 0);
}

/* Checks every map of `row` against image `image_id` (exact, after the dtype). */
static void check_image(dhf_feature_cache *c, int64_t row, int image_id)
{
    float got[2 * 8 * 12], want[2 * 8 * 12];
    bool half = dhf_cache_get_layout(c)->dtype == DHF_CACHE_F16;
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 3; l++) {
            size_t n = dhf_cache_map_numel(c, l);
            fill_map(want, n, image_id, s, l);
            if (half)
                for (size_t i = 0; i < n; i++)
                    want[i] = dhf_half_to_float(dhf_half_from_float(want[i]));
            assert_int_equal(dhf_cache_read_map(c, row, s, l, got, n), 0);
            assert_memory_equal(got, want, n * sizeof(float));
        }
}

static void roundtrip(dhf_cache_dtype dt, int compression, const char *name)
{
    const char *path = tmp_path(name);
    unlink(path);
    dhf_cache_layout l;
    make_layout(&l, dt, compression, NULL);
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    dhf_cache_image ims[3] = {image_named("cat/a"), image_named("dog/b"), image_named("cow/c")};
    int64_t rows[3];
    assert_int_equal(dhf_cache_add_images(c, ims, 3, rows), 0);
    assert_int_equal(rows[0], 0);
    assert_int_equal(rows[2], 2);
    write_image_id(c, rows[0], 7);
    write_image_id(c, rows[2], 9);
    /* Committing an incomplete image is refused. */
    float buf[4 * 2 * 3] = {0};
    assert_int_equal(dhf_cache_write_map(c, rows[1], 0, 0, buf, 24), 0);
    assert_int_equal(dhf_cache_commit(c, rows[1]), -1);
    assert_non_null(strstr(dhf_err_msg(), "only 1 of 6 maps"));
    /* Wrong count, committed row, bad step/layer. */
    assert_int_equal(dhf_cache_write_map(c, rows[1], 0, 0, buf, 23), -1);
    assert_non_null(strstr(dhf_err_msg(), "expected 24 values"));
    assert_int_equal(dhf_cache_write_map(c, rows[0], 0, 0, buf, 24), -1);
    assert_non_null(strstr(dhf_err_msg(), "already committed"));
    assert_int_equal(dhf_cache_write_map(c, rows[1], 2, 0, buf, 24), -1);
    assert_int_equal(dhf_cache_write_map(c, rows[1], 0, 3, buf, 24), -1);
    assert_int_equal(dhf_cache_num_committed(c), 2);
    assert_int_equal(dhf_cache_close(c), 0);

    assert_int_equal(dhf_cache_open_read(path, 2, &c), 0);
    assert_int_equal(dhf_cache_num_images(c), 3);
    assert_int_equal(dhf_cache_num_committed(c), 2);
    const dhf_cache_layout *rl = dhf_cache_get_layout(c);
    assert_int_equal(rl->num_layers, 3);
    assert_int_equal(rl->num_steps, 2);
    assert_int_equal(rl->dtype, dt);
    assert_int_equal(rl->compression, compression);
    assert_true(rl->unet_timestep[0] == -1 && rl->unet_timestep[1] == 60);
    assert_true(rl->save_label[0] == 49 && rl->save_label[1] == 45);
    assert_string_equal(rl->layer_name[2], "up_blocks.2.resnets.0");
    assert_int_equal(rl->layer_chw[2][2], 12);
    assert_string_equal(rl->model_name, "tiny-test");
    assert_string_equal(rl->model_hash, "fnv1a64:0123456789abcdef");
    assert_string_equal(rl->config_json, l.config_json);
    assert_string_equal(rl->identity_json, l.identity_json);
    int64_t row;
    assert_int_equal(dhf_cache_lookup(c, "cow/c", &row), 0);
    assert_int_equal(row, 2);
    const dhf_cache_image *im = dhf_cache_image_at(c, row);
    assert_string_equal(im->path, "/data/cow/c.jpg");
    assert_int_equal(im->width, 105);
    assert_int_equal(im->height, 50);
    check_image(c, 0, 7);
    check_image(c, 2, 9);
    assert_int_equal(dhf_cache_lookup(c, "dog/b", &row), -1);
    assert_non_null(strstr(dhf_err_msg(), "not finished"));
    assert_int_equal(dhf_cache_lookup(c, "nope/x", &row), -1);
    assert_non_null(strstr(dhf_err_msg(), "not in the cache"));
    float tmp[24];
    assert_int_equal(dhf_cache_read_map(c, 1, 0, 0, tmp, 24), -1);
    /* read_layer gives [S, C, H, W]. */
    float layer[2 * 2 * 8 * 12], want[2 * 8 * 12];
    assert_int_equal(dhf_cache_read_layer(c, 2, 2, layer, 2 * 192), 0);
    assert_int_equal(dhf_cache_read_map(c, 2, 1, 2, want, 192), 0);
    assert_memory_equal(layer + 192, want, sizeof want);
    int64_t bad = -1;
    assert_int_equal(dhf_cache_check_row(c, 0, &bad), 0);
    assert_int_equal(bad, 0);
    dhf_cache_stats st;
    assert_int_equal(dhf_cache_get_stats(c, &st), 0);
    assert_int_equal(st.values_per_image, 2 * (24 + 72 + 192));
    assert_int_equal(st.bytes_per_image, st.values_per_image * (dt == DHF_CACHE_F32 ? 4 : 2));
    assert_int_equal(st.stored_maps, 2 * 6 + 1);
    /* uncompressed: stored = raw plus the 4-byte Fletcher-32 checksum of every chunk
     * (one chunk per map) */
    if (compression == 0) {
        assert_true(st.compression_ratio < 1.0 && st.compression_ratio > 0.95);
    }
    assert_int_equal(dhf_cache_close(c), 0);

    /* Reopen for writing with the same layout: existing keys keep their rows. */
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    dhf_cache_image more[2] = {image_named("dog/b"), image_named("emu/d")};
    assert_int_equal(dhf_cache_add_images(c, more, 2, rows), 0);
    assert_int_equal(rows[0], 1);
    assert_int_equal(rows[1], 3);
    assert_false(dhf_cache_is_committed(c, 1));
    write_image_id(c, 1, 8);
    write_image_id(c, 3, 10);
    assert_int_equal(dhf_cache_close(c), 0);
    assert_int_equal(dhf_cache_open_read(path, 0, &c), 0);
    assert_int_equal(dhf_cache_num_committed(c), 4);
    for (int r = 0; r < 4; r++)
        check_image(c, r, 7 + r);
    assert_int_equal(dhf_cache_close(c), 0);
}

static void test_roundtrip_f32(void **state)
{
    (void)state;
    roundtrip(DHF_CACHE_F32, 0, "f32.h5");
}

static void test_roundtrip_f16_compressed(void **state)
{
    (void)state;
    roundtrip(DHF_CACHE_F16, 4, "f16z.h5");
}

static void test_add_images_errors(void **state)
{
    (void)state;
    const char *path = tmp_path("dups.h5");
    unlink(path);
    dhf_cache_layout l;
    make_layout(&l, DHF_CACHE_F16, 0, NULL);
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    dhf_cache_image ims[2] = {image_named("a/x"), image_named("a/x")};
    assert_int_equal(dhf_cache_add_images(c, ims, 2, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "given twice"));
    dhf_cache_image empty = image_named("");
    assert_int_equal(dhf_cache_add_images(c, &empty, 1, NULL), -1);
    assert_int_equal(dhf_cache_close(c), 0);
    /* A bad layout is refused up front. */
    l.num_layers = 0;
    assert_int_equal(dhf_cache_open_write(tmp_path("bad.h5"), &l, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "num_layers"));
}

/* Values float16 cannot hold become inf, and NaN stays NaN: verify counts them. */
static void test_check_row_nonfinite(void **state)
{
    (void)state;
    const char *path = tmp_path("nonfinite.h5");
    unlink(path);
    dhf_cache_layout l;
    make_layout(&l, DHF_CACHE_F16, 0, NULL);
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    dhf_cache_image ims[2] = {image_named("ok/1"), image_named("bad/2")};
    int64_t rows[2];
    assert_int_equal(dhf_cache_add_images(c, ims, 2, rows), 0);
    float buf[192];
    for (int img = 0; img < 2; img++) {
        for (int s = 0; s < 2; s++)
            for (int ly = 0; ly < 3; ly++) {
                size_t n = dhf_cache_map_numel(c, ly);
                fill_map(buf, n, img, s, ly);
                if (img == 1 && s == 1 && ly == 2) {
                    buf[0] = 1e6f;     /* > 65504: inf in float16 */
                    buf[7] = NAN;
                    buf[9] = -INFINITY;
                }
                assert_int_equal(dhf_cache_write_map(c, rows[img], s, ly, buf, n), 0);
            }
        assert_int_equal(dhf_cache_commit(c, rows[img]), 0);
    }
    assert_int_equal(dhf_cache_close(c), 0);
    assert_int_equal(dhf_cache_open_read(path, 1, &c), 0);
    int64_t bad = -1;
    assert_int_equal(dhf_cache_check_row(c, 0, &bad), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(dhf_cache_check_row(c, 1, &bad), 0);
    assert_int_equal(bad, 3);
    /* a reader never gets the values: the map is refused by image, step and layer */
    float m[192];
    assert_int_equal(dhf_cache_read_map(c, 1, 1, 2, m, 192), -1);
    assert_non_null(strstr(dhf_err_msg(), "step 1 (save_timestep"));
    assert_non_null(strstr(dhf_err_msg(), "layer 3: 3 values are not finite (the first, at "
                                          "index 0, is inf)"));
    assert_int_equal(dhf_cache_read_map(c, 1, 0, 2, m, dhf_cache_map_numel(c, 2)), 0);
    size_t per = dhf_cache_map_numel(c, 2);
    float all[2 * 192];
    assert_int_equal(dhf_cache_read_layer(c, 1, 2, all, 2 * per), -1);
    assert_int_equal(dhf_cache_close(c), 0);
}

/* ---- crash safety: a real SIGKILL in the middle of an image -------------------- */

static void test_kill_and_resume(void **state)
{
    (void)state;
    const char *path = tmp_path("killed.h5");
    unlink(path);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        dhf_cache_layout l;
        make_layout(&l, DHF_CACHE_F16, 1, NULL);
        dhf_feature_cache *c = NULL;
        if (dhf_cache_open_write(path, &l, &c) != 0)
            _exit(3);
        dhf_cache_image ims[4] = {image_named("k/0"), image_named("k/1"), image_named("k/2"),
                                  image_named("k/3")};
        int64_t rows[4];
        if (dhf_cache_add_images(c, ims, 4, rows) != 0)
            _exit(4);
        float buf[192];
        for (int img = 0; img < 3; img++) {
            for (int s = 0; s < 2; s++)
                for (int ly = 0; ly < 3; ly++) {
                    size_t n = dhf_cache_map_numel(c, ly);
                    fill_map(buf, n, img, s, ly);
                    if (dhf_cache_write_map(c, rows[img], s, ly, buf, n) != 0)
                        _exit(5);
                    /* Image 2 stops half-way: 3 of its 6 maps are written. */
                    if (img == 2 && s == 0 && ly == 2) {
                        char ok = 'k';
                        if (write(pipefd[1], &ok, 1) != 1)
                            _exit(6);
                        for (;;)
                            pause();
                    }
                }
            if (dhf_cache_commit(c, rows[img]) != 0)
                _exit(7);
        }
        _exit(8);   /* not reached */
    }
    close(pipefd[1]);
    char got = 0;
    ssize_t rd = read(pipefd[0], &got, 1);
    close(pipefd[0]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_int_equal(rd, 1);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* The killed file is readable: two finished images, intact; the third invisible. */
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_read(path, 1, &c), 0);
    assert_int_equal(dhf_cache_num_images(c), 4);
    assert_int_equal(dhf_cache_num_committed(c), 2);
    check_image(c, 0, 0);
    check_image(c, 1, 1);
    assert_false(dhf_cache_is_committed(c, 2));
    int64_t bad = 0;
    assert_int_equal(dhf_cache_check_row(c, 1, &bad), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(dhf_cache_close(c), 0);

    /* Resume: same rows, finish the rest. */
    dhf_cache_layout l;
    make_layout(&l, DHF_CACHE_F16, 1, NULL);
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    dhf_cache_image ims[4] = {image_named("k/0"), image_named("k/1"), image_named("k/2"),
                              image_named("k/3")};
    int64_t rows[4];
    assert_int_equal(dhf_cache_add_images(c, ims, 4, rows), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rows[i], i);
    assert_true(dhf_cache_is_committed(c, 0) && dhf_cache_is_committed(c, 1));
    write_image_id(c, 2, 2);
    write_image_id(c, 3, 3);
    assert_int_equal(dhf_cache_close(c), 0);

    /* A clean close leaves a file that plain HDF5 opens (no SWMR marks left). */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    assert_int_equal(dhf_cache_open_read(path, 1, &c), 0);
    assert_int_equal(dhf_cache_num_committed(c), 4);
    for (int i = 0; i < 4; i++)
        check_image(c, i, i);
    assert_int_equal(dhf_cache_close(c), 0);
}

/* ---- bad files ----------------------------------------------------------------- */

static void test_bad_files(void **state)
{
    (void)state;
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_read(tmp_path("absent.h5"), 1, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "absent.h5: no such file"));

    const char *garbage = tmp_path("garbage.h5");
    FILE *f = fopen(garbage, "wb");
    for (int i = 0; i < 5000; i++)
        fputc(i * 7, f);
    fclose(f);
    assert_int_equal(dhf_cache_open_read(garbage, 1, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "not a readable HDF5 file"));

    /* A valid HDF5 file that is not a cache. */
    const char *plain = tmp_path("plain.h5");
    hid_t h = H5Fcreate(plain, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    assert_int_equal(dhf_cache_open_read(plain, 1, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "not a dhf feature cache"));
    dhf_cache_layout pl;
    make_layout(&pl, DHF_CACHE_F16, 0, NULL);
    assert_int_equal(dhf_cache_open_write(plain, &pl, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "cannot open for writing"));

    /* A cache whose schema is older than this reader, and one whose string attribute is
     * variable-length (held in HDF5's global heap, which dhf never follows). */
    const char *vl = tmp_path("vlen.h5");
    unlink(vl);
    dhf_cache_layout vll;
    make_layout(&vll, DHF_CACHE_F16, 0, NULL);
    assert_int_equal(dhf_cache_open_write(vl, &vll, &c), 0);
    assert_int_equal(dhf_cache_close(c), 0);
    h = H5Fopen(vl, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(h >= 0);
    hid_t vt = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    hid_t sp = H5Screate(H5S_SCALAR);
    H5Adelete(h, "model_name");
    hid_t at = H5Acreate2(h, "model_name", vt, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *vname = "model";
    assert_true(H5Awrite(at, vt, &vname) >= 0);
    H5Aclose(at);
    H5Sclose(sp);
    H5Tclose(vt);
    H5Fclose(h);
    assert_int_equal(dhf_cache_open_read(vl, 1, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "'model_name': expected a fixed-length string"));
    h = H5Fopen(vl, H5F_ACC_RDWR, H5P_DEFAULT);
    int64_t old_version = 1;
    at = H5Aopen(h, "dhf_schema_version", H5P_DEFAULT);
    assert_true(H5Awrite(at, H5T_NATIVE_INT64, &old_version) >= 0);
    H5Aclose(at);
    H5Fclose(h);
    assert_int_equal(dhf_cache_open_read(vl, 1, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "cache schema version 1 is not supported"));

    /* A truncated cache: an error, never a crash. */
    const char *good = tmp_path("trunc_src.h5");
    unlink(good);
    dhf_cache_layout l;
    make_layout(&l, DHF_CACHE_F32, 0, NULL);
    assert_int_equal(dhf_cache_open_write(good, &l, &c), 0);
    dhf_cache_image im = image_named("t/1");
    int64_t row;
    assert_int_equal(dhf_cache_add_images(c, &im, 1, &row), 0);
    write_image_id(c, row, 1);
    assert_int_equal(dhf_cache_close(c), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", good, tmp_path("trunc.h5"));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(dhf_cache_open_read(tmp_path("trunc.h5"), 1, &c), -1);
    assert_true(strlen(dhf_err_msg()) > 0);
    assert_non_null(strstr(dhf_err_msg(), "trunc.h5"));
    /* A layout mismatch on resume names the differing setting. */
    dhf_cache_layout other;
    make_layout(&other, DHF_CACHE_F32, 0, "{\"num_timesteps\":1,\"vae_latent\":\"mean\"}");
    assert_int_equal(dhf_cache_open_write(good, &other, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "'num_timesteps': 50 vs 1"));
    make_layout(&other, DHF_CACHE_F16, 0, NULL);
    assert_int_equal(dhf_cache_open_write(good, &other, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "cache_dtype float32 vs float16"));
}

static void test_writer_lock(void **state)
{
    (void)state;
    const char *path = tmp_path("locked.h5");
    unlink(path);
    dhf_cache_layout l;
    make_layout(&l, DHF_CACHE_F16, 0, NULL);
    dhf_feature_cache *a = NULL, *b = NULL;
    assert_int_equal(dhf_cache_open_write(path, &l, &a), 0);
    assert_int_equal(dhf_cache_open_write(path, &l, &b), -1);
    assert_non_null(strstr(dhf_err_msg(), "another process is writing"));
    /* Readers are not blocked by a running writer. */
    assert_int_equal(dhf_cache_open_read(path, 1, &b), 0);
    assert_int_equal(dhf_cache_close(b), 0);
    assert_int_equal(dhf_cache_close(a), 0);
    char lock[600];
    snprintf(lock, sizeof lock, "%s.lock", path);
    assert_false(access(lock, F_OK) == 0);
}

/* ---- merge -------------------------------------------------------------------- */

static void make_shard(const char *path, dhf_cache_dtype dt, const char *identity,
                       const char *const *keys, const int *ids, int n, int uncommitted_extra)
{
    unlink(path);
    dhf_cache_layout l;
    make_layout(&l, dt, 2, identity);
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    for (int i = 0; i < n; i++) {
        dhf_cache_image im = image_named(keys[i]);
        int64_t row;
        assert_int_equal(dhf_cache_add_images(c, &im, 1, &row), 0);
        write_image_id(c, row, ids[i]);
    }
    if (uncommitted_extra) {
        dhf_cache_image im = image_named("pending/zz");
        assert_int_equal(dhf_cache_add_images(c, &im, 1, NULL), 0);
    }
    assert_int_equal(dhf_cache_close(c), 0);
}

static void test_merge(void **state)
{
    (void)state;
    const char *k1[] = {"a/1", "a/3", "b/5"};
    const int id1[] = {1, 3, 5};
    const char *k2[] = {"a/2", "b/5", "b/4"};
    const int id2[] = {2, 55, 4};
    const char *s0 = tmp_path("m.shard0of2.h5"), *s1 = tmp_path("m.shard1of2.h5");
    make_shard(s0, DHF_CACHE_F16, NULL, k1, id1, 3, 1);
    make_shard(s1, DHF_CACHE_F16, NULL, k2, id2, 3, 0);
    const char *out = tmp_path("merged.h5");
    unlink(out);
    const char *inputs[2] = {s0, s1};
    int64_t n = 0;
    assert_int_equal(dhf_cache_merge(out, inputs, 2, NULL, NULL, &n), 0);
    assert_int_equal(n, 5);
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_read(out, 1, &c), 0);
    assert_int_equal(dhf_cache_num_images(c), 5);
    assert_int_equal(dhf_cache_num_committed(c), 5);
    const char *want_keys[] = {"a/1", "a/3", "b/5", "a/2", "b/4"};
    const int want_ids[] = {1, 3, 5, 2, 4};   /* b/5 from the first input */
    for (int i = 0; i < 5; i++) {
        int64_t row;
        assert_int_equal(dhf_cache_lookup(c, want_keys[i], &row), 0);
        assert_int_equal(row, i);
        check_image(c, row, want_ids[i]);
    }
    assert_int_equal(dhf_cache_find(c, "pending/zz"), -1);
    assert_int_equal(dhf_cache_get_layout(c)->compression, 2);
    assert_int_equal(dhf_cache_close(c), 0);

    /* The output exists now: refused. */
    assert_int_equal(dhf_cache_merge(out, inputs, 2, NULL, NULL, &n), -1);
    assert_non_null(strstr(dhf_err_msg(), "exists"));

    /* Different extraction settings or dtype: refused, and no output left behind. */
    const char *s2 = tmp_path("other.h5");
    make_shard(s2, DHF_CACHE_F16, "{\"num_timesteps\":50,\"vae_latent\":\"sample\"}", k2,
               id2, 1, 0);
    const char *bad_inputs[2] = {s0, s2};
    const char *out2 = tmp_path("merged2.h5");
    unlink(out2);
    assert_int_equal(dhf_cache_merge(out2, bad_inputs, 2, NULL, NULL, &n), -1);
    assert_non_null(strstr(dhf_err_msg(), "'vae_latent': \"mean\" vs \"sample\""));
    assert_false(access(out2, F_OK) == 0);
    make_shard(s2, DHF_CACHE_F32, NULL, k2, id2, 1, 0);
    assert_int_equal(dhf_cache_merge(out2, bad_inputs, 2, NULL, NULL, &n), -1);
    assert_non_null(strstr(dhf_err_msg(), "cache_dtype"));
    assert_false(access(out2, F_OK) == 0);
}

/* ---- shards ------------------------------------------------------------------------ */

static void test_shard(void **state)
{
    (void)state;
    dhf_shard s;
    assert_int_equal(dhf_shard_parse("1/4", &s), 0);
    assert_int_equal(s.index, 1);
    assert_int_equal(s.count, 4);
    int picked[10], n = 0;
    for (int p = 0; p < 10; p++)
        if (dhf_shard_selects(s, p))
            picked[n++] = p;
    assert_int_equal(n, 3);
    assert_int_equal(picked[0], 1);
    assert_int_equal(picked[1], 5);
    assert_int_equal(picked[2], 9);
    assert_int_equal(dhf_shard_parse("0/1", &s), 0);
    assert_true(dhf_shard_selects(s, 7));
    assert_int_equal(dhf_shard_parse("4/4", &s), -1);
    assert_non_null(strstr(dhf_err_msg(), "0 <= K < N"));
    assert_int_equal(dhf_shard_parse("-1/4", &s), -1);
    assert_int_equal(dhf_shard_parse("a/b", &s), -1);
    assert_int_equal(dhf_shard_parse("1/", &s), -1);
    assert_int_equal(dhf_shard_parse("1/0", &s), -1);
    assert_int_equal(dhf_shard_parse("1/4x", &s), -1);
    char out[256];
    dhf_shard two = {2, 8};
    assert_int_equal(dhf_shard_cache_path("out/feats.h5", two, out, sizeof out), 0);
    assert_string_equal(out, "out/feats.shard2of8.h5");
    assert_int_equal(dhf_shard_cache_path("out.d/feats", two, out, sizeof out), 0);
    assert_string_equal(out, "out.d/feats.shard2of8");
    dhf_shard one = {0, 1};
    assert_int_equal(dhf_shard_cache_path("feats.h5", one, out, sizeof out), 0);
    assert_string_equal(out, "feats.h5");
}

/* ---- shim tensors --------------------------------------------------------------- */

static void test_tensor_reads(void **state)
{
    (void)state;
    const char *path = tmp_path("tensors.h5");
    unlink(path);
    dhf_cache_layout l;
    make_layout(&l, DHF_CACHE_F32, 0, NULL);
    dhf_feature_cache *c = NULL;
    assert_int_equal(dhf_cache_open_write(path, &l, &c), 0);
    dhf_cache_image im = image_named("t/x");
    int64_t row;
    assert_int_equal(dhf_cache_add_images(c, &im, 1, &row), 0);
    write_image_id(c, row, 4);
    assert_int_equal(dhf_cache_close(c), 0);
    assert_int_equal(dhf_cache_open_read(path, 1, &c), 0);
    long live = dhf_live_tensors();
    dhf_tensor t = NULL;
    assert_int_equal(dhf_cache_read_map_tensor(c, 0, 1, 1, &t), 0);
    int64_t shape[DHF_MAX_DIMS];
    int nd = 0;
    assert_int_equal(dhf_shape(t, shape, &nd), DHF_OK);
    assert_int_equal(nd, 4);
    assert_true(shape[0] == 1 && shape[1] == 3 && shape[2] == 4 && shape[3] == 6);
    const float *d = dhf_data_ptr(t);
    for (size_t i = 0; i < 72; i++)
        assert_true(d[i] == value_at(4, 1, 1, i));
    dhf_free(t);
    assert_int_equal(dhf_cache_read_layer_tensor(c, 0, 2, &t), 0);
    assert_int_equal(dhf_shape(t, shape, &nd), DHF_OK);
    assert_true(shape[0] == 2 && shape[1] == 2 && shape[2] == 8 && shape[3] == 12);
    d = dhf_data_ptr(t);
    assert_true(d[192 + 5] == value_at(4, 1, 2, 5));
    dhf_free(t);
    assert_int_equal(dhf_cache_read_map_tensor(c, 0, 2, 0, &t), -1);
    assert_int_equal(dhf_live_tensors(), live);
    assert_int_equal(dhf_cache_close(c), 0);
}

/* ---- model identity ----------------------------------------------------------- */

/* The fixture model (when ../shared/fixtures exists): folder name, a stable
 * "fnv1a64:" fingerprint, and a different one once a weight byte changes. */
static void test_model_identity(void **state)
{
    (void)state;
    const char *model = "../shared/fixtures/sd/models/tiny-sd15";
    if (access("../shared/fixtures", F_OK) != 0)
        skip();
    char name[256], hash[64], hash2[64], w[4096];
    if (dhf_model_identity(model, name, sizeof name, hash, sizeof hash) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_string_equal(name, "tiny-sd15");
    assert_int_equal(strlen(hash), 8 + 16);
    assert_memory_equal(hash, "fnv1a64:", 8);
    char slash[512];
    snprintf(slash, sizeof slash, "%s/", model);
    assert_int_equal(dhf_model_identity(slash, name, sizeof name, hash2, sizeof hash2), 0);
    assert_string_equal(name, "tiny-sd15");
    assert_string_equal(hash, hash2);
    assert_int_equal(dhf_model_unet_weights_path(model, w, sizeof w), 0);
    assert_non_null(strstr(w, "unet/diffusion_pytorch_model.safetensors"));

    /* A copy with one weight byte flipped near the start of the data. */
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/m/unet' && cp '%s/unet/config.json' '%s' '%s/m/unet/' && "
             "printf '\\377' | dd of='%s/m/unet/diffusion_pytorch_model.safetensors' "
             "bs=1 seek=20000 conv=notrunc status=none",
             tmpdir, model, w, tmpdir, tmpdir);
    assert_int_equal(system(cmd), 0);
    char copy[512];
    snprintf(copy, sizeof copy, "%s/m", tmpdir);
    assert_int_equal(dhf_model_identity(copy, name, sizeof name, hash2, sizeof hash2), 0);
    assert_string_equal(name, "m");
    assert_string_not_equal(hash, hash2);
    assert_int_equal(dhf_model_identity(tmp_path("nothing"), name, sizeof name, hash2,
                                        sizeof hash2), -1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_half_known_values),
    cmocka_unit_test(test_half_roundtrip_all),
    cmocka_unit_test(test_h5_half_type),
    cmocka_unit_test(test_roundtrip_f32),
    cmocka_unit_test(test_roundtrip_f16_compressed),
    cmocka_unit_test(test_add_images_errors),
    cmocka_unit_test(test_check_row_nonfinite),
    cmocka_unit_test(test_kill_and_resume),
    cmocka_unit_test(test_bad_files),
    cmocka_unit_test(test_writer_lock),
    cmocka_unit_test(test_merge),
    cmocka_unit_test(test_shard),
    cmocka_unit_test(test_tensor_reads),
    cmocka_unit_test(test_model_identity),
};

int main(void)
{
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
