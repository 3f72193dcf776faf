/* test_match.c — keypoint transfer on constructed descriptor maps whose answer
 * is known: PyTorch bilinear resize values, the paper's source-point rounding,
 * identity transfer between differently sized images, argmax at the borders,
 * ties, pad-mode geometry and round trip, padding never chosen, soft-argmax on
 * symmetric peaks, mutual-nearest flags, and agreement with a brute-force
 * resize + cosine + argmax.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/match.h"

static void test_resize_bilinear_values(void **state)
{
    (void)state;
    /* torch.nn.functional.interpolate([[0,1],[2,3]], size=4, mode="bilinear")
     * (align_corners=False) — the well-known result. */
    const float in[4] = {0, 1, 2, 3};
    const float want[16] = {0,   0.25f, 0.75f, 1,    0.5f, 0.75f, 1.25f, 1.5f,
                            1.5f, 1.75f, 2.25f, 2.5f, 2,    2.25f, 2.75f, 3};
    float out[16];
    dhf_map_resize_bilinear(in, 1, 2, 2, out, 4, 4);
    for (int i = 0; i < 16; i++)
        assert_true(out[i] == want[i]);
    /* Downsampling 1x4 -> 1x2: src = 2*(d+0.5)-0.5 = 0.5, 2.5 -> 0.5, 2.5. */
    const float row[4] = {0, 1, 2, 3};
    float half[2];
    dhf_map_resize_bilinear(row, 1, 1, 4, half, 1, 2);
    assert_true(half[0] == 0.5f && half[1] == 2.5f);
    /* 64 -> 224: output 17 reads source 4.5000002235... (scale is the float
     * 64/224, the index stays in double), so the weight of input 5 is the float
     * nearest 0.50000022, 0.5 + 2^-22, not 0.5 as a float index would give. */
    float wide[64] = {0}, narrow[224];
    wide[5] = 1.0f;
    dhf_map_resize_bilinear(wide, 1, 1, 64, narrow, 1, 224);
    assert_true(narrow[17] == 0.5f + 0x1p-22f);
    /* Same size is a copy; two channels are independent. */
    const float two[8] = {1, 2, 3, 4, 10, 20, 30, 40};
    float same[8];
    dhf_map_resize_bilinear(two, 2, 2, 2, same, 2, 2);
    assert_memory_equal(two, same, sizeof two);
    /* The one-pixel form equals the full resize everywhere. */
    float big[2 * 7 * 5], one[2];
    dhf_map_resize_bilinear(two, 2, 2, 2, big, 7, 5);
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 5; c++) {
            dhf_map_resize_bilinear_at(two, 2, 2, 2, 7, 5, c, r, one);
            assert_true(one[0] == big[r * 5 + c] && one[1] == big[35 + r * 5 + c]);
        }
}

static void test_load_index_rounding(void **state)
{
    (void)state;
    /* np.round: half to even; clipping to [0, L-1] first. */
    assert_int_equal(dhf_load_index(0.5, 8), 0);
    assert_int_equal(dhf_load_index(1.5, 8), 2);
    assert_int_equal(dhf_load_index(2.5, 8), 2);
    assert_int_equal(dhf_load_index(2.5000001, 8), 3);
    assert_int_equal(dhf_load_index(-3, 8), 0);
    assert_int_equal(dhf_load_index(7.6, 8), 7);
    assert_int_equal(dhf_load_index(300, 8), 7);
    assert_int_equal(dhf_load_index(NAN, 8), 0);
}

static void test_frame_geometry(void **state)
{
    (void)state;
    dhf_frame f;
    /* Stretch: x * (L / W), the paper's rescale_points. */
    assert_int_equal(dhf_frame_init(&f, 500, 375, 224, DHF_RESIZE_STRETCH), 0);
    double lx, ly, x, y;
    dhf_frame_to_load(&f, 123, 77, &lx, &ly);
    assert_true(lx == 123 * (224.0 / 500.0) && ly == 77 * (224.0 / 375.0));
    dhf_frame_to_orig(&f, 100, 50, &x, &y);
    assert_true(x == 100 * (500.0 / 224.0) && y == 50 * (375.0 / 224.0));
    assert_true(dhf_frame_on_image(&f, 0, 0) && dhf_frame_on_image(&f, 223, 223));
    /* Pad: 300x100 in a 300x300 square at y offset 100, L = 30 (scale 0.1). */
    assert_int_equal(dhf_frame_init(&f, 300, 100, 30, DHF_RESIZE_PAD), 0);
    assert_int_equal(f.frame_w, 300);
    assert_int_equal(f.off_x, 0);
    assert_int_equal(f.off_y, 100);
    dhf_frame_to_load(&f, 150, 50, &lx, &ly);
    assert_true(fabs(lx - 15) < 1e-12 && fabs(ly - 15) < 1e-12);
    /* Rows 0..9 and 20..29 are padding; 10..19 the image. */
    assert_false(dhf_frame_on_image(&f, 5, 9));
    assert_true(dhf_frame_on_image(&f, 5, 10));
    assert_true(dhf_frame_on_image(&f, 5, 19));
    assert_false(dhf_frame_on_image(&f, 5, 20));
    /* Round trip, odd padding (101x40: offset (101-40)/2 = 30). */
    assert_int_equal(dhf_frame_init(&f, 40, 101, 64, DHF_RESIZE_PAD), 0);
    assert_int_equal(f.off_x, 30);
    assert_int_equal(f.off_y, 0);
    for (double px = 0; px < 40; px += 3.7)
        for (double py = 0; py < 101; py += 9.1) {
            dhf_frame_to_load(&f, px, py, &lx, &ly);
            dhf_frame_to_orig(&f, lx, ly, &x, &y);
            assert_true(fabs(x - px) < 1e-9 && fabs(y - py) < 1e-9);
        }
    assert_int_equal(dhf_frame_init(&f, 0, 10, 64, DHF_RESIZE_PAD), -1);
    assert_int_equal(dhf_resize_policy_parse("letterbox", &(dhf_resize_policy){0}), -1);
    assert_non_null(strstr(dhf_err_msg(), "letterbox"));
}

/* One-hot descriptors at L x L: pixel (c, r) is the unit vector e_{r*L+c}. */
static float *one_hot_map(int L)
{
    int C = L * L;
    float *m = calloc((size_t)C * C, sizeof *m);
    for (int p = 0; p < C; p++)
        m[(size_t)p * C + p] = 1.0f;
    return m;
}

static void test_identity_transfer(void **state)
{
    (void)state;
    const int L = 8;
    float *m = one_hot_map(L);
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    dhf_desc_map src = {m, L * L, L, L, 16, 16}, trg = {m, L * L, L, L, 100, 300};
    /* src x*(8/16): (1, 1) -> (0.5, 0.5) -> (0, 0) half to even;
     * (3, 3) -> (1.5, 1.5) -> (2, 2); (5, 5) -> (2.5, 2.5) -> (2, 2);
     * (15.75, 0) -> (7.875, 0) -> clipped to 7 -> (7, 0). */
    double xy[8] = {1, 1, 3, 3, 5, 5, 15.75, 0};
    dhf_match_result r[4];
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 4, r), 0);
    const int want_col[4] = {0, 2, 2, 7}, want_row[4] = {0, 2, 2, 0};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(r[k].src_col, want_col[k]);
        assert_int_equal(r[k].src_row, want_row[k]);
        /* Same load pixel in the target, mapped back: col * (100/8), row * (300/8). */
        assert_true(r[k].load_x == want_col[k] && r[k].load_y == want_row[k]);
        assert_true(r[k].x == want_col[k] * (100.0 / 8.0));
        assert_true(r[k].y == want_row[k] * (300.0 / 8.0));
        assert_true(fabs(r[k].score - 1.0) < 1e-12);
        assert_int_equal(r[k].mutual, -1);
    }
    free(m);
}

static void test_argmax_at_borders(void **state)
{
    (void)state;
    const int L = 6, C = 3;
    /* Target: every pixel (0, 0, 1) except the four corners, each closest to one
     * of the source's descriptors. */
    float *t = calloc((size_t)C * L * L, sizeof *t);
    for (int p = 0; p < L * L; p++)
        t[2 * L * L + p] = 1.0f;
    const int corners[4][2] = {{0, 0}, {L - 1, 0}, {0, L - 1}, {L - 1, L - 1}};
    const float dirs[4][3] = {{1, 0, 0.2f}, {0, 1, 0.2f}, {-1, 0, 0.2f}, {0, -1, 0.2f}};
    float *s = calloc((size_t)C * L * L, sizeof *s);
    for (int k = 0; k < 4; k++) {
        int p = corners[k][1] * L + corners[k][0];
        for (int c = 0; c < C; c++)
            t[c * L * L + p] = dirs[k][c];
        /* Source: the same descriptor at the mirrored corner. */
        int q = (L - 1 - corners[k][1]) * L + (L - 1 - corners[k][0]);
        for (int c = 0; c < C; c++)
            s[c * L * L + q] = dirs[k][c];
    }
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    /* Source image 60x60, so kp (x, y) -> load (x/10, y/10). */
    dhf_desc_map src = {s, C, L, L, 60, 60}, trg = {t, C, L, L, 12, 6};
    double xy[8];
    for (int k = 0; k < 4; k++) {
        xy[2 * k] = (L - 1 - corners[k][0]) * 10.0;
        xy[2 * k + 1] = (L - 1 - corners[k][1]) * 10.0;
    }
    /* One source point beyond the image: clipped into the last column/row. */
    dhf_match_result r[4];
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 4, r), 0);
    for (int k = 0; k < 4; k++) {
        assert_true(r[k].load_x == corners[k][0] && r[k].load_y == corners[k][1]);
        assert_true(r[k].x == corners[k][0] * 2.0 && r[k].y == corners[k][1] * 1.0);
    }
    double beyond[2] = {75, 1000};
    assert_int_equal(dhf_match_points(&o, &src, &trg, beyond, 1, r), 0);
    assert_int_equal(r[0].src_col, L - 1);
    assert_int_equal(r[0].src_row, L - 1);
    free(t), free(s);
}

static void test_ties_first_row_major(void **state)
{
    (void)state;
    const int L = 8, C = 2;
    float *t = calloc((size_t)C * L * L, sizeof *t);
    for (int p = 0; p < L * L; p++)
        t[p] = 1.0f;                      /* (1, 0) everywhere ... */
    /* ... except three equally best pixels (0, 1): (5,2), (1,3), (6,2). */
    const int best[3][2] = {{5, 2}, {1, 3}, {6, 2}};
    for (int k = 0; k < 3; k++) {
        int p = best[k][1] * L + best[k][0];
        t[p] = 0.0f;
        t[L * L + p] = 1.0f;
    }
    float s[2 * 1 * 1] = {0.0f, 3.0f};    /* a 1x1 source map: resized, it is (0, 3) everywhere */
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    dhf_desc_map src = {s, C, 1, 1, 10, 10}, trg = {t, C, L, L, 8, 8};
    double xy[2] = {4, 4};
    dhf_match_result r;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    /* Row-major: (5,2) = index 21 comes before (6,2) = 22 and (1,3) = 25. */
    assert_true(r.load_x == 5 && r.load_y == 2);
    /* All pixels equal: the very first pixel. */
    for (int p = 0; p < L * L; p++)
        t[p] = 0.5f, t[L * L + p] = 0.5f;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(r.load_x == 0 && r.load_y == 0);
    /* Zero-norm pixels never win, even against a negative cosine. */
    memset(t, 0, (size_t)C * L * L * sizeof *t);
    t[L * L + 3 * L + 4] = -1.0f;        /* (4,3) = (0, -1): cosine -1 */
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(r.load_x == 4 && r.load_y == 3);
    assert_true(r.score == -1.0);
    free(t);
}

static void test_pad_mode(void **state)
{
    (void)state;
    const int L = 8;
    float *m = one_hot_map(L);
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    o.resize = DHF_RESIZE_PAD;
    /* Source 80x40: square 80, y offset 20, scale 0.1. Target 40x80: x offset 20. */
    dhf_desc_map src = {m, L * L, L, L, 80, 40}, trg = {m, L * L, L, L, 40, 80};
    /* Source (30, 10) -> load (3, 3); the same load pixel in the target is
     * (3*10 - 20, 3*10) = (10, 30) of the original target. */
    double xy[2] = {30, 10};
    dhf_match_result r;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_int_equal(r.src_col, 3);
    assert_int_equal(r.src_row, 3);
    assert_true(r.x == 10 && r.y == 30);
    /* A source point whose load pixel falls on the target's padding (column 0:
     * x = -20) is not transferred there: the best on-image pixel wins instead. */
    double left[2] = {0, 10};   /* load (0, 3) */
    assert_int_equal(dhf_match_points(&o, &src, &trg, left, 1, &r), 0);
    dhf_frame ft;
    dhf_frame_init(&ft, 40, 80, L, DHF_RESIZE_PAD);
    assert_true(dhf_frame_on_image(&ft, (int)r.load_x, (int)r.load_y));
    assert_true(r.x >= -0.5 && r.x < 39.5);
    free(m);
}

/* Two-channel descriptors (cos θ, sin θ) with θ growing with the squared
 * distance to the nearest peak: cosine against (1, 0) is cos θ. */
static float *peak_map(int L, const double (*peaks)[2], int n_peaks, double k)
{
    float *m = calloc((size_t)2 * L * L, sizeof *m);
    for (int r = 0; r < L; r++)
        for (int c = 0; c < L; c++) {
            double d2 = INFINITY;
            for (int p = 0; p < n_peaks; p++) {
                double dx = c - peaks[p][0], dy = r - peaks[p][1];
                if (dx * dx + dy * dy < d2)
                    d2 = dx * dx + dy * dy;
            }
            double th = fmin(k * d2, 3.0);
            m[r * L + c] = (float)cos(th);
            m[L * L + r * L + c] = (float)sin(th);
        }
    return m;
}

static void test_soft_argmax_symmetric(void **state)
{
    (void)state;
    const int L = 9;
    const double one[1][2] = {{4, 4}};
    float *t = peak_map(L, one, 1, 0.05);
    float s[2] = {1.0f, 0.0f};
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    o.temperature = 0.1;
    dhf_desc_map src = {s, 2, 1, 1, 9, 9}, trg = {t, 2, L, L, 18, 9};
    double xy[2] = {0, 0};
    dhf_match_result r;
    o.matcher = DHF_MATCH_SOFT_ARGMAX;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(fabs(r.load_x - 4) < 1e-9 && fabs(r.load_y - 4) < 1e-9);
    assert_true(fabs(r.x - 8) < 1e-9 && fabs(r.y - 4) < 1e-9);
    free(t);

    /* Two equal peaks at (2,4) and (6,4): hard argmax takes the first, the
     * global soft-argmax their midpoint, the window one stays on the first. */
    const double two[2][2] = {{2, 4}, {6, 4}};
    t = peak_map(L, two, 2, 0.3);
    trg.data = t;
    o.matcher = DHF_MATCH_ARGMAX;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(r.load_x == 2 && r.load_y == 4);
    o.matcher = DHF_MATCH_SOFT_ARGMAX;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(fabs(r.load_x - 4) < 1e-9 && fabs(r.load_y - 4) < 1e-9);
    o.matcher = DHF_MATCH_WINDOW_SOFT_ARGMAX;
    o.window_radius = 1;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(fabs(r.load_x - 2) < 1e-9 && fabs(r.load_y - 4) < 1e-9);
    /* A window clipped by the border is not symmetric: peak at (0, 4) pulls inward. */
    const double edge[1][2] = {{0, 4}};
    free(t);
    t = peak_map(L, edge, 1, 0.3);
    trg.data = t;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), 0);
    assert_true(r.load_x > 0 && r.load_x < 1 && fabs(r.load_y - 4) < 1e-9);
    o.temperature = 0;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, &r), -1);
    free(t);
}

static void test_mutual(void **state)
{
    (void)state;
    const int L = 4;
    float *m = one_hot_map(L);
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    o.mutual = true;
    o.mutual_radius = 0;
    dhf_desc_map src = {m, L * L, L, L, 4, 4}, trg = {m, L * L, L, L, 4, 4};
    double xy[4] = {0, 0, 3, 2};
    dhf_match_result r[2];
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 2, r), 0);
    assert_int_equal(r[0].mutual, 1);
    assert_int_equal(r[1].mutual, 1);
    /* Constant target: every source point lands on (0,0), whose reverse NN is
     * source (0,0) (all cosines equal: first pixel). Only kp 0 is mutual. */
    float *t = malloc((size_t)L * L * L * L * sizeof *t);
    for (size_t i = 0; i < (size_t)L * L * L * L; i++)
        t[i] = 1.0f;
    trg.data = t;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 2, r), 0);
    assert_int_equal(r[0].mutual, 1);
    assert_int_equal(r[1].mutual, 0);
    /* With radius 3 (Chebyshev) kp 1 at (3, 2) is within reach of (0, 0). */
    o.mutual_radius = 3;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 2, r), 0);
    assert_int_equal(r[1].mutual, 1);
    free(t), free(m);
}

/* Reference: resize both maps in full, cosine in double, first argmax. */
static void brute_force(const float *s, const float *t, int C, int h, int w, int L, int col, int row, int *bc,
                        int *br)
{
    float *rs = malloc((size_t)C * L * L * sizeof *rs), *rt = malloc((size_t)C * L * L * sizeof *rt);
    dhf_map_resize_bilinear(s, C, h, w, rs, L, L);
    dhf_map_resize_bilinear(t, C, h, w, rt, L, L);
    double q[64], qn = 0;
    for (int c = 0; c < C; c++) {
        q[c] = rs[(size_t)c * L * L + row * L + col];
        qn += q[c] * q[c];
    }
    double best = -INFINITY;
    for (int p = 0; p < L * L; p++) {
        double dot = 0, n2 = 0;
        for (int c = 0; c < C; c++) {
            double v = rt[(size_t)c * L * L + p];
            dot += q[c] * v;
            n2 += v * v;
        }
        double cs = dot / (sqrt(qn) * sqrt(n2));
        if (cs > best) {
            best = cs;
            *bc = p % L;
            *br = p / L;
        }
    }
    free(rs), free(rt);
}

static void test_against_brute_force(void **state)
{
    (void)state;
    const int C = 40, h = 5, w = 5, L = 16;   /* 40 channels: three resize chunks */
    float *s = malloc((size_t)C * h * w * sizeof *s), *t = malloc((size_t)C * h * w * sizeof *t);
    uint32_t st = 12345;
    for (int i = 0; i < C * h * w; i++) {
        st = st * 1664525u + 1013904223u;
        s[i] = (float)((st >> 8) & 0xFFFF) / 65536.0f - 0.5f;
        st = st * 1664525u + 1013904223u;
        t[i] = (float)((st >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
    dhf_match_opts o;
    dhf_match_opts_default(&o);
    o.load_size = L;
    dhf_desc_map src = {s, C, h, w, 64, 48}, trg = {t, C, h, w, 32, 80};
    double xy[10] = {0, 0, 63, 47, 10.5, 20.25, 33, 7, 50, 40};
    dhf_match_result r[5];
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 5, r), 0);
    for (int k = 0; k < 5; k++) {
        int bc = -1, br = -1;
        brute_force(s, t, C, h, w, L, r[k].src_col, r[k].src_row, &bc, &br);
        assert_int_equal((int)r[k].load_x, bc);
        assert_int_equal((int)r[k].load_y, br);
        assert_true(r[k].x == bc * (32.0 / L) && r[k].y == br * (80.0 / L));
    }
    /* Mismatched channel counts are an error naming both. */
    trg.c = 39;
    assert_int_equal(dhf_match_points(&o, &src, &trg, xy, 1, r), -1);
    assert_non_null(strstr(dhf_err_msg(), "40"));
    free(s), free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_bilinear_values),
        cmocka_unit_test(test_load_index_rounding),
        cmocka_unit_test(test_frame_geometry),
        cmocka_unit_test(test_identity_transfer),
        cmocka_unit_test(test_argmax_at_borders),
        cmocka_unit_test(test_ties_first_row_major),
        cmocka_unit_test(test_pad_mode),
        cmocka_unit_test(test_soft_argmax_symmetric),
        cmocka_unit_test(test_mutual),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
