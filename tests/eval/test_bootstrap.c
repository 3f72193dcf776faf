/* test_bootstrap.c — bootstrap intervals of PCK (eval/bootstrap.h) on cases whose
 * answer is known by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "eval/bootstrap.h"

/* every pair at 1 of 2: every resample is 0.5 */
static void test_constant(void **state)
{
    (void)state;
    dhf_boot_pair p[7];
    for (int i = 0; i < 7; i++)
        p[i] = (dhf_boot_pair){ 2, 1 };
    dhf_boot_interval ci;
    assert_int_equal(dhf_bootstrap_pck(p, 7, 500, 0.95, 1, &ci), 0);
    assert_true(ci.estimate == 0.5 && ci.lo == 0.5 && ci.hi == 0.5);
    assert_int_equal(ci.resamples, 500);
}

/* two one-keypoint pairs, right and wrong: a resample is 0, 0.5 or 1 with
 * probabilities 1/4, 1/2, 1/4, so the central 95% runs from 0 to 1 and about half
 * the resamples sit at 0.5 (the 25% and 75% quantiles are 0.5 too) */
static void test_two_pairs(void **state)
{
    (void)state;
    const dhf_boot_pair p[2] = { { 1, 1 }, { 1, 0 } };
    dhf_boot_interval ci, mid;
    assert_int_equal(dhf_bootstrap_pck(p, 2, 20000, 0.95, 7, &ci), 0);
    assert_true(ci.estimate == 0.5);
    assert_true(ci.lo == 0.0);
    assert_true(ci.hi == 1.0);
    assert_int_equal(dhf_bootstrap_pck(p, 2, 20000, 0.40, 7, &mid), 0);
    assert_true(mid.lo == 0.5 && mid.hi == 0.5);
    /* deterministic for a seed */
    dhf_boot_interval again;
    assert_int_equal(dhf_bootstrap_pck(p, 2, 20000, 0.95, 7, &again), 0);
    assert_true(ci.estimate == again.estimate && ci.lo == again.lo && ci.hi == again.hi);
}

/* pooled per keypoint: pairs weigh by their keypoints (3 of 4 and 0 of 1 -> 0.6) */
static void test_pooled_estimate(void **state)
{
    (void)state;
    const dhf_boot_pair p[2] = { { 4, 3 }, { 1, 0 } };
    dhf_boot_interval ci;
    assert_int_equal(dhf_bootstrap_pck(p, 2, 100, 0.95, 3, &ci), 0);
    assert_true(fabs(ci.estimate - 0.6) < 1e-15);
    assert_true(ci.lo >= 0.0 && ci.hi <= 0.75 && ci.lo <= ci.estimate);
}

static void test_paired_difference(void **state)
{
    (void)state;
    dhf_boot_pair a[5], b[5];
    for (int i = 0; i < 5; i++) {
        a[i] = (dhf_boot_pair){ 4, 3 };
        b[i] = (dhf_boot_pair){ 4, 1 + i % 2 };
    }
    dhf_boot_interval d;
    double le0 = -1;
    /* a is better on every pair: the whole interval is above 0, no resample <= 0 */
    assert_int_equal(dhf_bootstrap_pck_diff(a, b, 5, 2000, 0.95, 11, &d, &le0), 0);
    assert_true(fabs(d.estimate - (15.0 - 7.0) / 20.0) < 1e-15);
    assert_true(d.lo > 0.0);
    assert_true(le0 == 0.0);
    /* a method against itself: difference 0 in every resample */
    assert_int_equal(dhf_bootstrap_pck_diff(a, a, 5, 300, 0.95, 11, &d, &le0), 0);
    assert_true(d.estimate == 0.0 && d.lo == 0.0 && d.hi == 0.0 && le0 == 1.0);
}

static void test_from_keypoints(void **state)
{
    (void)state;
    dhf_pck_kp k[3];
    memset(k, 0, sizeof k);
    /* pair 0: distance 5 and 20 at size 100, alpha 0.1 (threshold 10) -> 1 of 2;
     * pair 1: distance 10 -> exactly at the threshold: correct */
    k[0] = (dhf_pck_kp){ .pair = 0, .gt = { 0, 0 }, .pred = { 3, 4 }, .size = { 100, 50 } };
    k[1] = (dhf_pck_kp){ .pair = 0, .gt = { 0, 0 }, .pred = { 12, 16 }, .size = { 100, 50 } };
    k[2] = (dhf_pck_kp){ .pair = 1, .gt = { 0, 0 }, .pred = { 6, 8 }, .size = { 100, 50 } };
    dhf_boot_pair p[2];
    dhf_boot_pairs_from_kps(k, 3, 2, DHF_PCK_IMG, 0.1, p);
    assert_int_equal(p[0].n, 2);
    assert_int_equal(p[0].correct, 1);
    assert_int_equal(p[1].n, 1);
    assert_int_equal(p[1].correct, 1);
    dhf_boot_pairs_from_kps(k, 3, 2, DHF_PCK_BBOX, 0.1, p);   /* threshold 5 */
    assert_int_equal(p[0].correct, 1);
    assert_int_equal(p[1].correct, 0);
}

static void test_errors(void **state)
{
    (void)state;
    const dhf_boot_pair p[1] = { { 1, 1 } }, q[1] = { { 2, 1 } }, none[1] = { { 0, 0 } };
    dhf_boot_interval ci;
    assert_int_equal(dhf_bootstrap_pck(p, 0, 10, 0.95, 1, &ci), -1);
    assert_int_equal(dhf_bootstrap_pck(p, 1, 0, 0.95, 1, &ci), -1);
    assert_int_equal(dhf_bootstrap_pck(p, 1, 10, 1.0, 1, &ci), -1);
    assert_int_equal(dhf_bootstrap_pck(none, 1, 10, 0.95, 1, &ci), -1);
    assert_non_null(strstr(dhf_err_msg(), "no keypoints"));
    assert_int_equal(dhf_bootstrap_pck_diff(p, q, 1, 10, 0.95, 1, &ci, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "pair 0 has 1 keypoints"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_two_pairs),
        cmocka_unit_test(test_pooled_estimate),
        cmocka_unit_test(test_paired_difference),
        cmocka_unit_test(test_from_keypoints),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
