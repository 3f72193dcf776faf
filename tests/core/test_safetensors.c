/* test_safetensors.c — the safetensors reader and writer: round trips of every
 * dtype, exact header bytes, half/bfloat16 rounding, every malformed-input case
 * (each must be an error naming the file and the tensor, never a crash), and the
 * real fixtures. Usage: test_safetensors [fixtures-dir] (default ../shared/fixtures).
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
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/safetensors.h"

static const char *fixtures_dir = "../shared/fixtures";
static char tmp_dir[64];

/* ---- helpers ------------------------------------------------------------------ */

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmp_dir, name);
}

/* Writes 8-byte length `hlen_field` + header text + data, byte for byte. */
static void write_raw(const char *path, uint64_t hlen_field, const char *header,
                      size_t header_len, const void *data, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hlen_field >> (8 * i));
    assert_int_equal(fwrite(len, 1, 8, fp), 8);
    if (header_len)
        assert_int_equal(fwrite(header, 1, header_len, fp), header_len);
    if (data_len)
        assert_int_equal(fwrite(data, 1, data_len, fp), data_len);
    assert_int_equal(fclose(fp), 0);
}

/* A file with a correct header length around `header` and `data_len` bytes 0..n-1. */
static void write_st(const char *path, const char *header, size_t data_len)
{
    unsigned char data[256];
    assert_true(data_len <= sizeof data);
    for (size_t i = 0; i < data_len; i++)
        data[i] = (unsigned char)i;
    write_raw(path, strlen(header), header, strlen(header), data, data_len);
}

/* Opening must fail, and the message must name the file and contain each of the
 * NULL-terminated fragments (the tensor, what was wrong). */
static void expect_open_error(const char *path, ...)
{
    dhf_st_file *f = (dhf_st_file *)0x1;
    dhf_err_clear();
    assert_int_equal(dhf_st_open(path, &f), -1);
    assert_ptr_equal(f, (dhf_st_file *)0x1);
    const char *msg = dhf_err_msg();
    if (!strstr(msg, path))
        fail_msg("message does not name the file %s: %s", path, msg);
    va_list ap;
    va_start(ap, path);
    for (const char *frag; (frag = va_arg(ap, const char *)) != NULL;)
        if (!strstr(msg, frag))
            fail_msg("message lacks \"%s\": %s", frag, msg);
    va_end(ap);
}

static void expect_bad_header(const char *name, const char *header, size_t data_len, ...)
{
    char path[256];
    tmp_path(path, sizeof path, name);
    write_st(path, header, data_len);
    dhf_st_file *f = NULL;
    dhf_err_clear();
    assert_int_equal(dhf_st_open(path, &f), -1);
    assert_null(f);
    const char *msg = dhf_err_msg();
    if (!strstr(msg, path))
        fail_msg("message does not name the file %s: %s", path, msg);
    va_list ap;
    va_start(ap, data_len);
    for (const char *frag; (frag = va_arg(ap, const char *)) != NULL;)
        if (!strstr(msg, frag))
            fail_msg("%s: message lacks \"%s\": %s", name, frag, msg);
    va_end(ap);
}

static int setup_tmp(void **state)
{
    strcpy(tmp_dir, "/tmp/dhf_st_test_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- dtypes and conversions ----------------------------------------------------- */

static void test_dtype_table(void **state)
{
    assert_int_equal(dhf_st_dtype_size(DHF_ST_F32), 4);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_F16), 2);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_BF16), 2);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_F64), 8);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_I64), 8);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_I32), 4);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_U8), 1);
    assert_int_equal(dhf_st_dtype_size(DHF_ST_BOOL), 1);
    assert_int_equal(dhf_st_dtype_size((dhf_st_dtype)8), 0);
    assert_string_equal(dhf_st_dtype_name(DHF_ST_BF16), "BF16");
    assert_string_equal(dhf_st_dtype_name((dhf_st_dtype)-1), "?");
    dhf_st_dtype dt;
    assert_int_equal(dhf_st_dtype_parse("BOOL", &dt), 0);
    assert_int_equal(dt, DHF_ST_BOOL);
    assert_int_equal(dhf_st_dtype_parse("f32", &dt), -1); /* names are case-sensitive */
    assert_non_null(strstr(dhf_err_msg(), "\"f32\""));
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_half_conversions(void **state)
{
    /* Hand-derived encodings: sign | exponent (bias 15) | 10-bit mantissa. */
    static const struct { float f; uint16_t h; } exact[] = {
        {0.0f, 0x0000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.5f, 0x3800},
        {65504.0f, 0x7bff}, {6.103515625e-05f, 0x0400} /* 2^-14, smallest normal */,
        {5.9604644775390625e-08f, 0x0001} /* 2^-24, smallest subnormal */,
        {3.0517578125e-05f, 0x0200} /* 2^-15, subnormal */, {1.5f, 0x3e00},
    };
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
        assert_int_equal(dhf_st_f32_to_f16(exact[i].f), exact[i].h);
        assert_int_equal(fbits(dhf_st_f16_to_f32(exact[i].h)), fbits(exact[i].f));
    }
    assert_int_equal(fbits(dhf_st_f16_to_f32(0x8000)), 0x80000000u); /* -0 */
    assert_true(isinf(dhf_st_f16_to_f32(0x7c00)) && dhf_st_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(dhf_st_f16_to_f32(0xfc00)) && dhf_st_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(dhf_st_f16_to_f32(0x7e00)));
    /* Rounding to nearest, ties to even. */
    assert_int_equal(dhf_st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        /* tie -> even */
    assert_int_equal(dhf_st_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);    /* tie -> even */
    assert_int_equal(dhf_st_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    assert_int_equal(dhf_st_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(dhf_st_f32_to_f16(65520.0f), 0x7c00);               /* overflow */
    assert_int_equal(dhf_st_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(dhf_st_f32_to_f16(0x1p-25f), 0x0000);               /* tie -> 0 */
    assert_int_equal(dhf_st_f32_to_f16(0x1p-25f + 0x1p-35f), 0x0001);
    assert_int_equal(dhf_st_f32_to_f16(3 * 0x1p-25f), 0x0002);           /* 1.5 -> 2 */
    assert_int_equal(dhf_st_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400);    /* up to normal */
    assert_int_equal(dhf_st_f32_to_f16(0.1f), 0x2e66);
    assert_int_equal(dhf_st_f32_to_f16(NAN) & 0x7e00, 0x7e00);

    assert_int_equal(dhf_st_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(dhf_st_f32_to_bf16(-1.5f), 0xbfc0);
    assert_int_equal(dhf_st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);        /* tie -> even */
    assert_int_equal(dhf_st_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);    /* tie -> even */
    assert_int_equal(dhf_st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    assert_true(isnan(dhf_st_bf16_to_f32(dhf_st_f32_to_bf16(NAN))));
    assert_true(dhf_st_bf16_to_f32(0x3f81) == 1.0078125f);
}

/* ---- round trips ------------------------------------------------------------------ */

static void test_round_trip_all_dtypes(void **state)
{
    const float f32[6] = {1.0f, -2.5f, 0.0f, 3.25f, -0.125f, 1e-3f};
    const uint16_t f16[3] = {0x3c00, 0xc100 /* -2.5 */, 0x0001 /* 2^-24 */};
    const uint16_t bf16[2] = {0x3fc0 /* 1.5 */, 0xc2c8 /* -100 */};
    const double f64[2] = {1e-310, -123456.75};
    const int64_t i64[3] = {-5, 0, (int64_t)1 << 40};
    const int32_t i32[2] = {-7, 2147483647};
    const uint8_t u8[4] = {0, 1, 200, 255};
    const uint8_t bl[3] = {1, 0, 1};
    const int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s22[2] = {2, 2}, s0[2] = {4, 0};

    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_add(w, "z_f32", DHF_ST_F32, s23, 2, f32), 0);
    assert_int_equal(dhf_st_writer_add(w, "f16", DHF_ST_F16, s3, 1, f16), 0);
    assert_int_equal(dhf_st_writer_add(w, "bf16", DHF_ST_BF16, s2, 1, bf16), 0);
    assert_int_equal(dhf_st_writer_add(w, "f64", DHF_ST_F64, s2, 1, f64), 0);
    assert_int_equal(dhf_st_writer_add(w, "i64", DHF_ST_I64, s3, 1, i64), 0);
    assert_int_equal(dhf_st_writer_add(w, "i32", DHF_ST_I32, s2, 1, i32), 0);
    assert_int_equal(dhf_st_writer_add(w, "u8", DHF_ST_U8, s22, 2, u8), 0);
    assert_int_equal(dhf_st_writer_add(w, "bool", DHF_ST_BOOL, s3, 1, bl), 0);
    const float scalar = 42.0f;
    assert_int_equal(dhf_st_writer_add(w, "scalar", DHF_ST_F32, NULL, 0, &scalar), 0);
    assert_int_equal(dhf_st_writer_add(w, "empty", DHF_ST_F32, s0, 2, NULL), 0);
    assert_int_equal(dhf_st_writer_set_metadata(w, "format", "pt"), 0);
    assert_int_equal(dhf_st_writer_set_metadata(w, "note", "first"), 0);
    assert_int_equal(dhf_st_writer_set_metadata(w, "note", "say \"hi\"\n\xc3\xa9"), 0);
    assert_int_equal(dhf_st_writer_count(w), 10);
    char path[256];
    tmp_path(path, sizeof path, "all.safetensors");
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);

    /* Header length is a multiple of 8; the data region holds exactly the bytes. */
    FILE *fp = fopen(path, "rb");
    unsigned char head[8];
    assert_int_equal(fread(head, 1, 8, fp), 8);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)head[i] << (8 * i);
    assert_int_equal(hlen % 8, 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, 8 + hlen + 24 + 6 + 4 + 16 + 24 + 8 + 4 + 3 + 4);

    dhf_st_file *f = NULL;
    assert_int_equal(dhf_st_open(path, &f), 0);
    assert_string_equal(dhf_st_path(f), path);
    assert_int_equal(dhf_st_count(f), 10);
    /* name order */
    const char *order[] = {"bf16", "bool", "empty", "f16", "f64", "i32", "i64", "scalar",
                           "u8", "z_f32"};
    for (int i = 0; i < 10; i++)
        assert_string_equal(dhf_st_at(f, i)->name, order[i]);
    assert_null(dhf_st_at(f, 10));
    assert_null(dhf_st_at(f, -1));
    assert_null(dhf_st_find(f, "nope"));
    assert_int_equal(dhf_st_index(f, "nope"), -1);
    assert_int_equal(dhf_st_index(f, "f64"), 4);
    assert_int_equal(dhf_st_index(f, "z_f32"), 9);

    const dhf_st_info *t = dhf_st_find(f, "z_f32");
    assert_non_null(t);
    assert_int_equal(t->dtype, DHF_ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->shape[2], 0);
    assert_int_equal(t->numel, 6);
    assert_int_equal(t->nbytes, 24);
    assert_memory_equal(t->data, f32, 24);
    float out[6];
    assert_int_equal(dhf_st_read_f32(f, "z_f32", out, 6), 0);
    assert_memory_equal(out, f32, sizeof out);

    struct { const char *name; dhf_st_dtype dt; const void *raw; size_t nbytes;
             float expect[4]; size_t n; } cases[] = {
        {"f16", DHF_ST_F16, f16, 6, {1.0f, -2.5f, 0x1p-24f}, 3},
        {"bf16", DHF_ST_BF16, bf16, 4, {1.5f, -100.0f}, 2},
        {"f64", DHF_ST_F64, f64, 16, {0.0f, -123456.75f}, 2}, /* 1e-310 underflows */
        {"i64", DHF_ST_I64, i64, 24, {-5.0f, 0.0f, 1099511627776.0f}, 3},
        {"i32", DHF_ST_I32, i32, 8, {-7.0f, 2147483648.0f}, 2},
        {"u8", DHF_ST_U8, u8, 4, {0.0f, 1.0f, 200.0f, 255.0f}, 4},
        {"bool", DHF_ST_BOOL, bl, 3, {1.0f, 0.0f, 1.0f}, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        t = dhf_st_find(f, cases[c].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, cases[c].dt);
        assert_int_equal(t->nbytes, cases[c].nbytes);
        assert_memory_equal(t->data, cases[c].raw, cases[c].nbytes);
        float v[4];
        assert_int_equal(dhf_st_read_f32(f, cases[c].name, v, cases[c].n), 0);
        for (size_t i = 0; i < cases[c].n; i++)
            assert_int_equal(fbits(v[i]), fbits(cases[c].expect[i]));
    }
    t = dhf_st_find(f, "u8");
    assert_int_equal(t->ndim, 2);
    t = dhf_st_find(f, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(t->nbytes, 4);
    t = dhf_st_find(f, "empty");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(t->shape[1], 0);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(dhf_st_read_f32(f, "empty", out, 0), 0);

    /* count mismatch and missing tensor name the file and tensor */
    assert_int_equal(dhf_st_read_f32(f, "z_f32", out, 5), -1);
    assert_non_null(strstr(dhf_err_msg(), path));
    assert_non_null(strstr(dhf_err_msg(), "tensor 'z_f32'"));
    assert_non_null(strstr(dhf_err_msg(), "expected 6"));
    assert_int_equal(dhf_st_read_f32(f, "missing", out, 1), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'missing': not found"));

    assert_int_equal(dhf_st_metadata_count(f), 2);
    assert_string_equal(dhf_st_metadata_key(f, 0), "format");
    assert_string_equal(dhf_st_metadata_value(f, 0), "pt");
    assert_string_equal(dhf_st_metadata_get(f, "note"), "say \"hi\"\n\xc3\xa9");
    assert_null(dhf_st_metadata_get(f, "absent"));
    assert_null(dhf_st_metadata_key(f, 2));
    dhf_st_close(f);
}

/* The writer's exact bytes for one tensor: keys in order, integers exact, space pad. */
static void test_writer_exact_bytes(void **state)
{
    const float v[2] = {1.0f, 2.0f};
    const int64_t shape[1] = {2};
    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_add_borrowed(w, "a", DHF_ST_F32, shape, 1, v), 0);
    char path[256];
    tmp_path(path, sizeof path, "exact.safetensors");
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    /* Saving twice gives the same file. */
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);

    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json); /* 54 -> padded with 2 spaces to 56 */
    assert_int_equal(jl, 54);
    unsigned char expect[8 + 56 + 8];
    memset(expect, 0, 8);
    expect[0] = 56;
    memcpy(expect + 8, json, jl);
    expect[8 + 54] = ' ';
    expect[8 + 55] = ' ';
    memcpy(expect + 64, v, 8);
    unsigned char got[sizeof expect + 1];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(got, 1, sizeof got, fp), sizeof expect);
    fclose(fp);
    assert_memory_equal(got, expect, sizeof expect);
}

static void test_header_only_files(void **state)
{
    char path[256];
    dhf_st_writer *w = NULL;
    dhf_st_file *f = NULL;
    /* No tensors at all: "{}" padded to 8 bytes, nothing after it. */
    tmp_path(path, sizeof path, "empty.safetensors");
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 16);
    assert_int_equal(dhf_st_open(path, &f), 0);
    assert_int_equal(dhf_st_count(f), 0);
    assert_int_equal(dhf_st_metadata_count(f), 0);
    assert_null(dhf_st_find(f, "x"));
    dhf_st_close(f);

    /* Only metadata, and only empty tensors: the file is 8 bytes + header. */
    tmp_path(path, sizeof path, "meta_only.safetensors");
    const int64_t s0[1] = {0};
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_set_metadata(w, "k", "v"), 0);
    assert_int_equal(dhf_st_writer_add(w, "e1", DHF_ST_I64, s0, 1, NULL), 0);
    assert_int_equal(dhf_st_writer_add(w, "e2", DHF_ST_BF16, s0, 1, NULL), 0);
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);
    assert_int_equal(dhf_st_open(path, &f), 0);
    assert_int_equal(dhf_st_count(f), 2);
    assert_string_equal(dhf_st_metadata_get(f, "k"), "v");
    assert_int_equal(dhf_st_find(f, "e2")->nbytes, 0);
    dhf_st_close(f);

    /* Hand-written: whitespace padding after the object is allowed. */
    tmp_path(path, sizeof path, "padded.safetensors");
    write_st(path, "{\"__metadata__\":{}}     \t\n ", 0);
    assert_int_equal(dhf_st_open(path, &f), 0);
    assert_int_equal(dhf_st_count(f), 0);
    dhf_st_close(f);
}

static void test_writer_errors(void **state)
{
    const float v[4] = {0};
    const int64_t s2[1] = {2}, neg[1] = {-1}, big[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_add(w, "x", DHF_ST_F32, s2, 1, v), 0);
    assert_int_equal(dhf_st_writer_add(w, "x", DHF_ST_F32, s2, 1, v), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'x': added twice"));
    assert_int_equal(dhf_st_writer_add(w, "__metadata__", DHF_ST_F32, s2, 1, v), -1);
    assert_int_equal(dhf_st_writer_add(w, "n", DHF_ST_F32, neg, 1, v), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'n'"));
    assert_int_equal(dhf_st_writer_add(w, "b", DHF_ST_F32, big, 2, v), -1);
    assert_int_equal(dhf_st_writer_add(w, "d", (dhf_st_dtype)99, s2, 1, v), -1);
    assert_int_equal(dhf_st_writer_add(w, "r", DHF_ST_F32, s2, 9, v), -1);
    assert_int_equal(dhf_st_writer_add(w, "nul", DHF_ST_F32, s2, 1, NULL), -1);
    /* adopted buffers are freed by the writer, also when adding fails (ASan checks) */
    float *own = malloc(2 * sizeof *own);
    own[0] = 5.0f;
    own[1] = 6.0f;
    assert_int_equal(dhf_st_writer_add_owned(w, "own", DHF_ST_F32, s2, 1, own), 0);
    float *dup = malloc(2 * sizeof *dup);
    assert_int_equal(dhf_st_writer_add_owned(w, "own", DHF_ST_F32, s2, 1, dup), -1);
    assert_int_equal(dhf_st_writer_count(w), 2);
    /* a failed save leaves no file and no temp file behind */
    char path[256];
    tmp_path(path, sizeof path, "no_such_dir/out.safetensors");
    assert_int_equal(dhf_st_writer_save(w, path), -1);
    assert_int_equal(access(path, F_OK), -1);
    dhf_st_writer_free(w);
    dhf_st_writer_free(NULL);
    dhf_st_close(NULL);
}

/* ---- malformed files ------------------------------------------------------------- */

static void test_truncated_and_length(void **state)
{
    char path[256];
    tmp_path(path, sizeof path, "short.safetensors");
    FILE *fp = fopen(path, "wb");
    fwrite("\x10\0\0\0\0", 1, 5, fp);
    fclose(fp);
    expect_open_error(path, "too short", "got 5", NULL);

    tmp_path(path, sizeof path, "zero.safetensors");
    fp = fopen(path, "wb");
    fclose(fp);
    expect_open_error(path, "too short", "got 0", NULL);

    /* header length larger than the file */
    tmp_path(path, sizeof path, "hlen.safetensors");
    write_raw(path, 1000, "{}", 2, NULL, 0);
    expect_open_error(path, "header length larger than the file", "expected <= 2",
                      "got 1000", NULL);
    write_raw(path, UINT64_MAX, "{}", 2, NULL, 0);
    expect_open_error(path, "header length larger than the file", NULL);
    write_raw(path, 0, "", 0, NULL, 0);
    expect_open_error(path, "not JSON", NULL);

    /* Tensor data cut off: offsets point past the end of the file. */
    tmp_path(path, sizeof path, "cut.safetensors");
    write_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10);
    expect_open_error(path, "tensor 'w'", "out of range", "data region size 10", NULL);

    /* Truncating a valid file anywhere is an error, never a crash. */
    const float vals[3] = {1, 2, 3};
    const int64_t s3[1] = {3};
    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_add(w, "v", DHF_ST_F32, s3, 1, vals), 0);
    assert_int_equal(dhf_st_writer_set_metadata(w, "m", "x"), 0);
    char full[256];
    tmp_path(full, sizeof full, "full.safetensors");
    assert_int_equal(dhf_st_writer_save(w, full), 0);
    dhf_st_writer_free(w);
    unsigned char buf[512];
    fp = fopen(full, "rb");
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 20 && n < sizeof buf);
    for (size_t len = 0; len < n; len++) {
        fp = fopen(path, "wb");
        fwrite(buf, 1, len, fp);
        fclose(fp);
        dhf_st_file *f = NULL;
        assert_int_equal(dhf_st_open(path, &f), -1);
        assert_null(f);
    }
}

static void test_not_json(void **state)
{
    expect_bad_header("nj1.safetensors", "{not json", 0, "header: not JSON", NULL);
    expect_bad_header("nj2.safetensors", "[1, 2]", 0, "not a JSON object", "an array", NULL);
    expect_bad_header("nj3.safetensors", "\"str\"", 0, "not a JSON object", NULL);
    expect_bad_header("nj4.safetensors", "{} {}", 0, "not JSON", NULL);
    expect_bad_header("nj5.safetensors", "", 0, "not JSON", NULL);
    char path[256];
    tmp_path(path, sizeof path, "nul.safetensors");
    write_raw(path, 4, "{}\0 ", 4, NULL, 0);
    expect_open_error(path, "NUL byte", NULL);
    /* the entry itself, fields, metadata */
    expect_bad_header("e1.safetensors", "{\"t\":[1]}", 0, "tensor 't'", "not a JSON object",
                      NULL);
    expect_bad_header("e2.safetensors", "{\"t\":{\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                      "tensor 't'", "missing field \"dtype\"", NULL);
    expect_bad_header("e3.safetensors",
                      "{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1}}",
                      4, "tensor 't'", "unknown field \"x\"", NULL);
    expect_bad_header("e4.safetensors",
                      "{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[],"
                      "\"data_offsets\":[0,4]}}", 4, "tensor 't'", "appears twice", NULL);
    expect_bad_header("e5.safetensors",
                      "{\"t\":{\"dtype\":7,\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                      "tensor 't'", "dtype is not a string", NULL);
    expect_bad_header("m1.safetensors", "{\"__metadata__\":[]}", 0, "__metadata__",
                      "not a JSON object", NULL);
    expect_bad_header("m2.safetensors", "{\"__metadata__\":{\"a\":1}}", 0,
                      "__metadata__ key 'a'", "not a string", NULL);
    expect_bad_header("m3.safetensors", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0,
                      "key 'a' appears twice", NULL);
    expect_bad_header("m4.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", 0,
                      "__metadata__ appears twice", NULL);
    expect_bad_header("d1.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2,
                      "tensor 't'", "appears twice", NULL);
}

static void test_unknown_dtype(void **state)
{
    expect_bad_header("dt.safetensors",
                      "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                      1, "tensor 't'", "unknown dtype", "got \"F8_E4M3\"", NULL);
    expect_bad_header("dt2.safetensors",
                      "{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      "unknown dtype", NULL);
}

static void test_shape_length_mismatch(void **state)
{
    expect_bad_header("mm1.safetensors",
                      "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                      "tensor 't'", "shape [3] of F32", "expected 12 bytes, got 8", NULL);
    expect_bad_header("mm2.safetensors",
                      "{\"t\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                      "tensor 't'", "expected 2 bytes, got 4", NULL);
    expect_bad_header("sh1.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
                      "tensor 't'", "shape[0]", NULL);
    expect_bad_header("sh2.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
                      "tensor 't'", "shape[0]", NULL);
    expect_bad_header("sh3.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1,
                      "tensor 't'", "shape[0]", "a string", NULL);
    expect_bad_header("sh4.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                      "\"data_offsets\":[0,1]}}", 1, "tensor 't'", "too many dimensions",
                      "got 9", NULL);
    expect_bad_header("sh5.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":{},\"data_offsets\":[0,1]}}", 1,
                      "tensor 't'", "shape is not an array", NULL);
    expect_bad_header("sh6.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", 1,
                      "tensor 't'", "shape[0]", NULL);
}

static void test_huge_shapes(void **state)
{
    /* 2^62 elements of F32 = 2^64 bytes: overflows. */
    expect_bad_header("h1.safetensors",
                      "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                      "\"data_offsets\":[0,4]}}", 4, "tensor 't'", "too many elements",
                      NULL);
    /* 2^31 * 2^31 * 4 = 2^64 elements: the product itself overflows. */
    expect_bad_header("h2.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[2147483648,2147483648,4],"
                      "\"data_offsets\":[0,4]}}", 4, "tensor 't'", "too many elements", NULL);
    /* 2^62 bytes fits 64 bits but not the file. */
    expect_bad_header("h3.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904],"
                      "\"data_offsets\":[0,4]}}", 4, "tensor 't'",
                      "expected 4611686018427387904 bytes, got 4", NULL);
    /* 2^62 * 2^62 * 2 wraps to 0 modulo 2^64 (a naive product would accept it). */
    expect_bad_header("h4.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904,"
                      "4611686018427387904,2],\"data_offsets\":[0,0]}}", 0, "tensor 't'",
                      "too many elements", NULL);
    /* 2^63 itself is not a valid dimension. */
    expect_bad_header("h5.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],"
                      "\"data_offsets\":[0,0]}}", 0, "tensor 't'", "shape[0]", NULL);
    /* A zero dimension makes the tensor empty even beside a huge one: valid. */
    char path[256];
    tmp_path(path, sizeof path, "h6.safetensors");
    write_st(path, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,0],"
                   "\"data_offsets\":[0,0]}}", 0);
    dhf_st_file *f = NULL;
    assert_int_equal(dhf_st_open(path, &f), 0);
    assert_int_equal(dhf_st_find(f, "t")->numel, 0);
    assert_int_equal(dhf_st_find(f, "t")->shape[0], (int64_t)1 << 62);
    dhf_st_close(f);
    /* Huge offsets. */
    expect_bad_header("h7.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[4],"
                      "\"data_offsets\":[18446744073709551612,18446744073709551616]}}", 4,
                      "tensor 't'", "data_offsets", NULL);
    expect_bad_header("h8.safetensors",
                      "{\"t\":{\"dtype\":\"U8\",\"shape\":[4],"
                      "\"data_offsets\":[4611686018427387904,4611686018427387908]}}", 4,
                      "tensor 't'", "out of range", NULL);
}

static void test_offsets(void **state)
{
    expect_bad_header("o1.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                      "tensor 'b'", "overlaps tensor 'a'", "expected begin >= 8, got 4",
                      NULL);
    expect_bad_header("o2.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                      "overlaps", NULL);
    expect_bad_header("o3.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
                      "tensor 'b'", "gap", "expected begin 4, got 8", NULL);
    expect_bad_header("o4.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                      "do not cover the data region", "got 8 data bytes", NULL);
    expect_bad_header("o5.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                      "tensor 'a'", "out of range", NULL);
    expect_bad_header("o6.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
                      "tensor 'a'", "begin after end", NULL);
    expect_bad_header("o7.safetensors",
                      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
                      "tensor 'a'", "data_offsets must be [begin, end]", NULL);
    expect_bad_header("o8.safetensors",
                      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1,
                      "tensor 'a'", "data_offsets", NULL);
    expect_bad_header("o9.safetensors", "{}", 4, "no tensors", NULL);
    /* An empty tensor inside another's bytes overlaps it (as the reference does). */
    expect_bad_header("o10.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
                      "tensor 'e'", "overlaps", NULL);
    /* Unordered but tiling offsets, empty tensors at the edges: valid. */
    char path[256];
    tmp_path(path, sizeof path, "ok.safetensors");
    write_st(path,
             "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
             "\"e\":{\"dtype\":\"I64\",\"shape\":[0,3],\"data_offsets\":[5,5]},"
             "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
             "\"z\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 5);
    dhf_st_file *f = NULL;
    assert_int_equal(dhf_st_open(path, &f), 0);
    assert_int_equal(dhf_st_count(f), 4);
    assert_int_equal(((const uint8_t *)dhf_st_find(f, "b")->data)[1], 4);
    assert_int_equal(dhf_st_find(f, "b")->offset, 3);
    dhf_st_close(f);
}

static void test_open_errors(void **state)
{
    char path[256];
    tmp_path(path, sizeof path, "does_not_exist.safetensors");
    expect_open_error(path, "cannot open", NULL);
    expect_open_error(tmp_dir, "not a regular file", NULL);
    dhf_st_file *f = NULL;
    assert_int_equal(dhf_st_open(NULL, &f), -1);
}

/* Random byte flips in a valid header: each open succeeds or fails cleanly. */
static void test_corrupted_headers_never_crash(void **state)
{
    const char *header =
        "{\"__metadata__\":{\"k\":\"v\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]}}";
    size_t hl = strlen(header);
    unsigned char data[14] = {0};
    char buf[512], path[256];
    tmp_path(path, sizeof path, "flip.safetensors");
    const char repl[] = "{}[]\",:0123456789-e.EF \\u";
    uint32_t rng = 12345;
    int opened = 0;
    for (int it = 0; it < 600; it++) {
        memcpy(buf, header, hl);
        int flips = 1 + it % 3;
        for (int k = 0; k < flips; k++) {
            rng = rng * 1664525u + 1013904223u;
            size_t pos = (rng >> 8) % hl;
            rng = rng * 1664525u + 1013904223u;
            buf[pos] = (it & 1) ? repl[(rng >> 8) % (sizeof repl - 1)]
                                : (char)((rng >> 8) & 0xff);
        }
        write_raw(path, hl, buf, hl, data, sizeof data);
        dhf_st_file *f = NULL;
        if (dhf_st_open(path, &f) == 0) {
            opened++;
            for (int i = 0; i < dhf_st_count(f); i++) {
                const dhf_st_info *t = dhf_st_at(f, i);
                assert_true(t->offset + t->nbytes <= sizeof data);
            }
            dhf_st_close(f);
        } else {
            assert_null(f);
            assert_non_null(strstr(dhf_err_msg(), path));
        }
    }
    assert_true(opened < 600);
}

/* ---- fixtures ------------------------------------------------------------------------ */

static void fixture_path(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", fixtures_dir, rel);
    struct stat st;
    if (stat(fixtures_dir, &st) != 0)
        skip();
    if (stat(buf, &st) != 0)
        fail_msg("fixture missing: %s", buf);
}

static void test_fixture_aggregator(void **state)
{
    char path[1024];
    fixture_path(path, sizeof path, "aggregator/agg_small.safetensors");
    dhf_st_file *f = NULL;
    if (dhf_st_open(path, &f) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_st_count(f), 277);
    assert_string_equal(dhf_st_metadata_get(f, "case"), "agg_small");
    assert_non_null(dhf_st_metadata_get(f, "config"));
    const dhf_st_info *t = dhf_st_find(f, "adamw.step1.bottlenecks.0.conv1.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[0], 32);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->shape[2], 1);
    assert_int_equal(t->shape[3], 1);
    /* An I64 tensor at an offset that is not a multiple of 8. */
    t = dhf_st_find(f, "idx.src");
    assert_non_null(t);
    assert_int_equal(t->dtype, DHF_ST_I64);
    float idx[6];
    assert_int_equal(dhf_st_read_f32(f, "idx.src", idx, 6), 0);
    const float expect_idx[6] = {83, 162, 15, 128, 216, 75};
    assert_memory_equal(idx, expect_idx, sizeof idx);
    float losses[3];
    assert_int_equal(dhf_st_read_f32(f, "adamw.losses", losses, 3), 0);
    assert_int_equal(fbits(losses[0]), 0x40b935ca); /* 5.787816047668457 */
    dhf_st_close(f);
}

static void test_fixture_unet(void **state)
{
    char path[1024];
    fixture_path(path, sizeof path,
                 "sd/models/tiny-sd15/unet/diffusion_pytorch_model.safetensors");
    dhf_st_file *f = NULL;
    if (dhf_st_open(path, &f) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_st_count(f), 686);
    assert_string_equal(dhf_st_metadata_get(f, "format"), "pt");
    const dhf_st_info *t = dhf_st_find(f, "conv_in.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    int64_t expect_shape[4] = {32, 4, 3, 3};
    assert_memory_equal(t->shape, expect_shape, sizeof expect_shape);
    t = dhf_st_find(f, "down_blocks.1.attentions.0.proj_in.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 48);
    float bias[32];
    assert_int_equal(dhf_st_read_f32(f, "conv_in.bias", bias, 32), 0);
    assert_int_equal(fbits(bias[0]), 0x3e0f647c); /* 0.14003175497055054 */
    dhf_st_close(f);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixtures_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_round_trip_all_dtypes),
        cmocka_unit_test(test_writer_exact_bytes),
        cmocka_unit_test(test_header_only_files),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_truncated_and_length),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_shape_length_mismatch),
        cmocka_unit_test(test_huge_shapes),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_corrupted_headers_never_crash),
        cmocka_unit_test(test_fixture_aggregator),
        cmocka_unit_test(test_fixture_unet),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
