/* test_st_tensor.c — safetensors <-> shim tensors: F16/BF16/F64 load as F32 with
 * hand-computed values, integer dtypes keep theirs (also at unaligned offsets),
 * shape checks name file, tensor and both shapes, and shim tensors (any dtype,
 * non-contiguous) are written back exactly.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"

static char tmp_dir[64];
static char file_path[128];
static long live_at_start;

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* One file with every dtype; "a_u8" (3 bytes) comes first in name order so the
 * I64 and I32 tensors after it sit at offsets that are not multiples of 8 / 4. */
static int setup(void **state)
{
    strcpy(tmp_dir, "/tmp/dhf_st_tensor_XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    snprintf(file_path, sizeof file_path, "%s/all.safetensors", tmp_dir);
    const uint8_t u8[3] = {7, 0, 255};
    const uint16_t f16[4] = {0x3c00 /* 1 */, 0xc100 /* -2.5 */, 0x3800 /* 0.5 */,
                             0x7bff /* 65504 */};
    const uint16_t bf16[3] = {0x3fc0 /* 1.5 */, 0xc2c8 /* -100 */, 0x3f81 /* 1.0078125 */};
    const double f64[2] = {0.1, -3.0};
    const int64_t i64[3] = {-5, 0, (int64_t)1 << 40};
    const int32_t i32[2] = {-7, 2147483647};
    const uint8_t bl[3] = {1, 0, 1}, bad_bool[2] = {0, 2};
    const float scalar = 4.5f;
    const int64_t s3[1] = {3}, s22[2] = {2, 2}, s2[1] = {2}, s03[2] = {0, 3};
    dhf_st_writer *w = NULL;
    if (dhf_st_writer_new(&w) != 0)
        return -1;
    int rc = 0;
    rc |= dhf_st_writer_add(w, "a_u8", DHF_ST_U8, s3, 1, u8);
    rc |= dhf_st_writer_add(w, "b_i64", DHF_ST_I64, s3, 1, i64);
    rc |= dhf_st_writer_add(w, "c_i32", DHF_ST_I32, s2, 1, i32);
    rc |= dhf_st_writer_add(w, "h", DHF_ST_F16, s22, 2, f16);
    rc |= dhf_st_writer_add(w, "bf", DHF_ST_BF16, s3, 1, bf16);
    rc |= dhf_st_writer_add(w, "d", DHF_ST_F64, s2, 1, f64);
    rc |= dhf_st_writer_add(w, "mask", DHF_ST_BOOL, s3, 1, bl);
    rc |= dhf_st_writer_add(w, "bad_mask", DHF_ST_BOOL, s2, 1, bad_bool);
    rc |= dhf_st_writer_add(w, "s", DHF_ST_F32, NULL, 0, &scalar);
    rc |= dhf_st_writer_add(w, "empty", DHF_ST_F16, s03, 2, NULL);
    rc |= dhf_st_writer_save(w, file_path);
    dhf_st_writer_free(w);
    live_at_start = dhf_live_tensors();
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static dhf_st_file *open_file(void)
{
    dhf_st_file *f = NULL;
    if (dhf_st_open(file_path, &f) != 0)
        fail_msg("%s", dhf_err_msg());
    return f;
}

/* Loads `name`, checks dtype and shape, copies the values out (as stored dtype). */
static void load_check(dhf_st_file *f, const char *name, dhf_dtype dt, const int64_t *shape,
                       int ndim, void *values, size_t nbytes)
{
    dhf_tensor t = NULL;
    if (dhf_st_load(f, name, &t) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_get_dtype(t), dt);
    assert_int_equal(dhf_get_device(t).type, DHF_CPU);
    assert_int_equal(dhf_ndim(t), ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(dhf_size(t, i), shape[i]);
    if (nbytes)
        assert_int_equal(dhf_to_buffer(t, dt, values, nbytes), DHF_OK);
    dhf_free(t);
}

static void test_float_dtypes_become_f32(void **state)
{
    dhf_st_file *f = open_file();
    float v[4];
    const int64_t s22[2] = {2, 2}, s3[1] = {3}, s2[1] = {2}, s03[2] = {0, 3};
    load_check(f, "h", DHF_F32, s22, 2, v, sizeof v);
    assert_true(v[0] == 1.0f && v[1] == -2.5f && v[2] == 0.5f && v[3] == 65504.0f);
    load_check(f, "bf", DHF_F32, s3, 1, v, 3 * sizeof *v);
    assert_true(v[0] == 1.5f && v[1] == -100.0f && v[2] == 1.0078125f);
    load_check(f, "d", DHF_F32, s2, 1, v, 2 * sizeof *v);
    assert_int_equal(fbits(v[0]), fbits((float)0.1)); /* rounded once, from the double */
    assert_true(v[1] == -3.0f);
    load_check(f, "s", DHF_F32, NULL, 0, v, sizeof *v);
    assert_true(v[0] == 4.5f);
    load_check(f, "empty", DHF_F32, s03, 2, NULL, 0);
    dhf_st_close(f);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_integer_dtypes_kept(void **state)
{
    dhf_st_file *f = open_file();
    assert_true(dhf_st_find(f, "b_i64")->offset % 8 != 0); /* the unaligned case */
    const int64_t s3[1] = {3}, s2[1] = {2};
    int64_t i64[3];
    load_check(f, "b_i64", DHF_I64, s3, 1, i64, sizeof i64);
    assert_true(i64[0] == -5 && i64[1] == 0 && i64[2] == (int64_t)1 << 40);
    int32_t i32[2];
    load_check(f, "c_i32", DHF_I32, s2, 1, i32, sizeof i32);
    assert_true(i32[0] == -7 && i32[1] == 2147483647);
    uint8_t u8[3];
    load_check(f, "a_u8", DHF_U8, s3, 1, u8, sizeof u8);
    assert_true(u8[0] == 7 && u8[1] == 0 && u8[2] == 255);
    uint8_t bl[3];
    load_check(f, "mask", DHF_BOOL, s3, 1, bl, sizeof bl);
    assert_true(bl[0] == 1 && bl[1] == 0 && bl[2] == 1);
    /* A BOOL byte other than 0/1 is refused rather than handed to torch. */
    dhf_tensor t = NULL;
    assert_int_equal(dhf_st_load(f, "bad_mask", &t), -1);
    assert_null(t);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'bad_mask'"));
    assert_non_null(strstr(dhf_err_msg(), "got 2"));
    dhf_st_close(f);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_load_expect(void **state)
{
    dhf_st_file *f = open_file();
    const int64_t good[2] = {2, 2}, wrong[2] = {2, 3}, flat[1] = {4};
    dhf_tensor t = NULL;
    assert_int_equal(dhf_st_load_expect(f, "h", good, 2, &t), 0);
    assert_non_null(t);
    dhf_free(t);
    t = NULL;
    assert_int_equal(dhf_st_load_expect(f, "h", wrong, 2, &t), -1);
    assert_null(t);
    const char *msg = dhf_err_msg();
    assert_non_null(strstr(msg, file_path));
    assert_non_null(strstr(msg, "tensor 'h': shape mismatch (expected [2, 3], got [2, 2])"));
    assert_int_equal(dhf_st_load_expect(f, "h", flat, 1, &t), -1);
    assert_non_null(strstr(dhf_err_msg(), "(expected [4], got [2, 2])"));
    assert_int_equal(dhf_st_load_expect(f, "s", NULL, 0, &t), 0);
    dhf_free(t);
    t = NULL;
    assert_int_equal(dhf_st_load_expect(f, "nope", good, 2, &t), -1);
    assert_non_null(strstr(dhf_err_msg(), file_path));
    assert_non_null(strstr(dhf_err_msg(), "tensor 'nope': not found"));
    assert_int_equal(dhf_st_load(f, "nope", &t), -1);
    assert_null(t);
    dhf_st_close(f);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_writer_add_tensor(void **state)
{
    const float m[6] = {1, 2, 3, 4, 5, 6};     /* [2, 3] */
    const int64_t s23[2] = {2, 3}, s2[1] = {2};
    const int64_t ids[2] = {-1, 9};
    const uint16_t bf[2] = {0x3f80, 0x4000};    /* 1, 2 */
    dhf_tensor a = NULL, at = NULL, b = NULL, c = NULL;
    assert_int_equal(dhf_from_buffer(m, DHF_F32, s23, 2, &a), DHF_OK);
    assert_int_equal(dhf_transpose(a, 0, 1, &at), DHF_OK); /* [3, 2], not contiguous */
    assert_int_equal(dhf_from_buffer(ids, DHF_I64, s2, 1, &b), DHF_OK);
    assert_int_equal(dhf_from_buffer(bf, DHF_BF16, s2, 1, &c), DHF_OK);

    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_add_tensor(w, "mT", at), 0);
    assert_int_equal(dhf_st_writer_add_tensor(w, "ids", b), 0);
    assert_int_equal(dhf_st_writer_add_tensor(w, "bf", c), 0);
    assert_int_equal(dhf_st_writer_add_tensor(w, "ids", b), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'ids'"));
    char path[128];
    snprintf(path, sizeof path, "%s/from_shim.safetensors", tmp_dir);
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);
    dhf_free(a);
    dhf_free(at);
    dhf_free(b);
    dhf_free(c);

    dhf_st_file *f = NULL;
    assert_int_equal(dhf_st_open(path, &f), 0);
    const dhf_st_info *t = dhf_st_find(f, "mT");
    assert_int_equal(t->dtype, DHF_ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 2);
    const float mt[6] = {1, 4, 2, 5, 3, 6};
    assert_memory_equal(t->data, mt, sizeof mt);
    t = dhf_st_find(f, "ids");
    assert_int_equal(t->dtype, DHF_ST_I64);
    assert_memory_equal(t->data, ids, sizeof ids);
    t = dhf_st_find(f, "bf");
    assert_int_equal(t->dtype, DHF_ST_BF16);
    assert_memory_equal(t->data, bf, sizeof bf);
    dhf_st_close(f);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_dtypes_become_f32),
        cmocka_unit_test(test_integer_dtypes_kept),
        cmocka_unit_test(test_load_expect),
        cmocka_unit_test(test_writer_add_tensor),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
