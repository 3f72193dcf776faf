/* test_blocked.c — packing between NCHW and nChw16c (train/blocked.h) against the
 * layout's definition, element by element: channel counts that are and are not
 * multiples of 16 (padding lanes must be zero), pixel counts that are and are not
 * multiples of 16 (the transpose's tail), a destination that is not 64-byte aligned
 * (the scalar path), and unpack as the inverse.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/blocked.h"

static void check_shape(int64_t n, int64_t c, int64_t h, int64_t w, size_t misalign)
{
    const size_t in_n = (size_t)(n * c * h * w), blk_n = dhf_blk_numel(n, c, h, w);
    float *x = malloc(sizeof(float) * in_n);
    float *store = aligned_alloc(64, sizeof(float) * (blk_n + 16));
    float *back = malloc(sizeof(float) * in_n);
    assert_non_null(x);
    assert_non_null(store);
    assert_non_null(back);
    for (size_t i = 0; i < in_n; i++)
        x[i] = (float)i * 0.5f + 1.f;                 /* distinct, non-zero */
    float *blk = store + misalign;
    memset(store, 0xff, sizeof(float) * (blk_n + 16)); /* NaN garbage where nothing writes */
    dhf_blk_pack(x, n, c, h, w, blk);
    const int64_t cb = dhf_blk_cpad(c) / DHF_BLK;
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < cb * DHF_BLK; ch++)
            for (int64_t p = 0; p < h * w; p++) {
                const float got = blk[((i * cb + ch / DHF_BLK) * h * w + p) * DHF_BLK +
                                      ch % DHF_BLK];
                const float want = ch < c ? x[(i * c + ch) * h * w + p] : 0.f;
                if (got != want)
                    fail_msg("pack n=%lld c=%lld h=%lld w=%lld misalign=%zu: (%lld, %lld, %lld) "
                             "got %g want %g", (long long)n, (long long)c, (long long)h,
                             (long long)w, misalign, (long long)i, (long long)ch, (long long)p,
                             (double)got, (double)want);
            }
    dhf_blk_unpack(blk, n, c, h, w, back);
    assert_memory_equal(back, x, sizeof(float) * in_n);
    free(x);
    free(store);
    free(back);
}

static void test_pack_multiples_of_16(void **state)
{
    (void)state;
    check_shape(3, 32, 8, 8, 0);
    check_shape(2, 48, 4, 16, 0);
}

static void test_pack_padding_and_tails(void **state)
{
    (void)state;
    check_shape(2, 20, 7, 9, 0);     /* 63 pixels: 48 by the transpose, 15 by the tail */
    check_shape(1, 5, 4, 4, 0);      /* one partial block */
    check_shape(2, 17, 1, 3, 0);     /* fewer pixels than one transpose */
    check_shape(1, 320, 8, 8, 0);
}

static void test_pack_unaligned_destination(void **state)
{
    (void)state;
    check_shape(2, 20, 8, 8, 1);
    check_shape(1, 16, 5, 5, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_multiples_of_16),
        cmocka_unit_test(test_pack_padding_and_tails),
        cmocka_unit_test(test_pack_unaligned_destination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
