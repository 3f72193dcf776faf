/* test_heatmap.c — the mixing-weight heatmap: column labels in the paper's convention
 * (inversion reverses save_timestep, flip_timesteps reverses it once more), the
 * softmax against hand-computed values, and the three files: the PNG decodes at the
 * documented size with the colour map's two ends present, the SVG is an SVG of the
 * same drawing size, the CSV holds the softmaxed weights laid out as the picture;
 * also the whole path from a checkpoint file, and the refusals.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "shim/torch_shim.h"
#include "train/checkpoint.h"
#include "train/heatmap.h"

static char tmp_dir[64];

static int setup(void **state)
{
    strcpy(tmp_dir, "/tmp/dhf_heatmap_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_column_labels(void **state)
{
    const int64_t paper[11] = {49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0};
    int64_t got[11];
    /* inversion: reversed, the clean-image end (storage step 0) labelled 0 */
    assert_int_equal(dhf_heatmap_column_labels(paper, 11, "inversion", false, got), 0);
    for (int s = 0; s < 11; s++)
        assert_int_equal(got[s], paper[10 - s]);   /* 0, 5, ..., 45, 49 */
    /* generation: as stored */
    assert_int_equal(dhf_heatmap_column_labels(paper, 11, "generation", false, got), 0);
    for (int s = 0; s < 11; s++)
        assert_int_equal(got[s], paper[s]);
    /* flip_timesteps reverses before the inversion reversal: they cancel */
    assert_int_equal(dhf_heatmap_column_labels(paper, 11, "inversion", true, got), 0);
    for (int s = 0; s < 11; s++)
        assert_int_equal(got[s], paper[s]);
    assert_int_equal(dhf_heatmap_column_labels(paper, 11, "generation", true, got), 0);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[10], 49);
    /* the one-step setting */
    const int64_t one[1] = {0};
    assert_int_equal(dhf_heatmap_column_labels(one, 1, "inversion", false, got), 0);
    assert_int_equal(got[0], 0);
    assert_int_equal(dhf_heatmap_column_labels(paper, 11, "sampling", false, got), -1);
    assert_non_null(strstr(dhf_err_msg(), "diffusion_mode 'sampling'"));
    assert_int_equal(dhf_heatmap_column_labels(paper, 0, "inversion", false, got), -1);
}

static void test_softmax_by_hand(void **state)
{
    /* raw = ln k for k = 1..6 -> softmax = k / (1+2+...+6) = k / 21 */
    float raw[6], w[6];
    for (int k = 1; k <= 6; k++)
        raw[k - 1] = logf((float)k);
    assert_int_equal(dhf_heatmap_softmax(raw, 6, w), 0);
    for (int k = 1; k <= 6; k++)
        assert_float_equal(w[k - 1], k / 21.0, 2e-7);
    /* shift invariance, no overflow for large values */
    float big[2] = {1000.0f, 1000.0f}, wb[2];
    assert_int_equal(dhf_heatmap_softmax(big, 2, wb), 0);
    assert_true(wb[0] == 0.5f && wb[1] == 0.5f);
    big[1] = NAN;
    assert_int_equal(dhf_heatmap_softmax(big, 2, wb), -1);
    assert_non_null(strstr(dhf_err_msg(), "mixing weight 1"));
}

/* Parses our CSV: header labels and an L x S matrix. */
static void read_csv(const char *path, int S, int L, int64_t *labels, double *vals)
{
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        fail_msg("%s", dhf_err_msg());
    char *line = strtok(text, "\n");
    assert_non_null(line);
    assert_int_equal(strncmp(line, "layer,", 6), 0);
    char *p = line + 6;
    for (int s = 0; s < S; s++) {
        labels[s] = strtoll(p, &p, 10);
        assert_true(*p == (s + 1 < S ? ',' : '\0'));
        p++;
    }
    for (int l = 0; l < L; l++) {
        line = strtok(NULL, "\n");
        assert_non_null(line);
        assert_int_equal(strtol(line, &p, 10), l + 1);
        for (int s = 0; s < S; s++) {
            assert_true(*p == ',');
            vals[l * S + s] = strtod(p + 1, &p);
        }
        assert_true(*p == '\0');
    }
    assert_null(strtok(NULL, "\n"));
    free(text);
}

/* Some pixel within `tol` (per channel) of rgb. */
static bool has_colour(const dhf_image *img, int r, int g, int b, int tol)
{
    for (int i = 0; i < img->width * img->height; i++) {
        const uint8_t *px = img->rgb + 3 * i;
        if (abs(px[0] - r) <= tol && abs(px[1] - g) <= tol && abs(px[2] - b) <= tol)
            return true;
    }
    return false;
}

static void test_write_files(void **state)
{
    enum { S = 2, L = 3 };
    /* raw[s*L + l] = ln(k), k = s*L + l + 1 -> weight k / 21 */
    float raw[S * L], w[S * L];
    for (int i = 0; i < S * L; i++)
        raw[i] = logf((float)(i + 1));
    assert_int_equal(dhf_heatmap_softmax(raw, S * L, w), 0);
    const int64_t labels[S] = {0, 25};
    char png[160], svg[160], csv[160];
    snprintf(png, sizeof png, "%s/mixing.png", tmp_dir);
    snprintf(svg, sizeof svg, "%s/mixing.svg", tmp_dir);
    snprintf(csv, sizeof csv, "%s/mixing.csv", tmp_dir);
    if (dhf_heatmap_write(w, S, L, labels, "Mixing weights: test", "subtitle", png) != 0)
        fail_msg("%s", dhf_err_msg());

    /* CSV: rows are layers, columns timesteps, values k / 21 with k = s*L + l + 1 */
    int64_t got_labels[S];
    double vals[L * S];
    read_csv(csv, S, L, got_labels, vals);
    assert_int_equal(got_labels[0], 0);
    assert_int_equal(got_labels[1], 25);
    for (int l = 0; l < L; l++)
        for (int s = 0; s < S; s++)
            assert_float_equal(vals[l * S + s], (s * L + l + 1) / 21.0, 2e-7);
    /* %.9g gives back the exact float */
    assert_true((float)vals[1 * S + 1] == w[1 * L + 1]);

    /* PNG: documented size, and the colour map's ends appear (min cell dark purple
     * #440154, max cell yellow #FDE725) */
    int cw = 0, ch = 0;
    dhf_heatmap_canvas_size(S, L, &cw, &ch);
    assert_true(cw > 0 && ch > 0);
    dhf_image img = {0};
    if (dhf_image_load(png, &img) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(img.width, cw * DHF_HEATMAP_PNG_SCALE);
    assert_int_equal(img.height, ch * DHF_HEATMAP_PNG_SCALE);
    assert_true(has_colour(&img, 0x44, 0x01, 0x54, 2));
    assert_true(has_colour(&img, 0xFD, 0xE7, 0x25, 2));
    assert_true(has_colour(&img, 255, 255, 255, 0));   /* background */
    dhf_image_free(&img);

    /* SVG: an SVG document of the same drawing size (in px) */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(dhf_read_file(svg, &text, &len), 0);
    assert_non_null(strstr(text, "<svg"));
    char want[64];
    snprintf(want, sizeof want, "width=\"%dpx\"", cw);
    if (!strstr(text, want))
        fail_msg("SVG lacks %s", want);
    free(text);

    /* no temporary files left */
    DIR *d = opendir(tmp_dir);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp"))
            fail_msg("temporary file left: %s", de->d_name);
    closedir(d);
}

static void test_equal_weights_and_big_grid(void **state)
{
    /* at initialisation every weight is 1/(S*L): no colour range, still drawn */
    enum { S = 11, L = 12 };
    float w[S * L];
    for (int i = 0; i < S * L; i++)
        w[i] = 1.0f / (S * L);
    int64_t labels[S];
    for (int s = 0; s < S; s++)
        labels[s] = 5 * s;
    char png[160];
    snprintf(png, sizeof png, "%s/init.png", tmp_dir);
    if (dhf_heatmap_write(w, S, L, labels, NULL, NULL, png) != 0)
        fail_msg("%s", dhf_err_msg());
    int cw, ch, iw, ih;
    dhf_heatmap_canvas_size(S, L, &cw, &ch);
    assert_int_equal(dhf_image_size(png, &iw, &ih), 0);
    assert_int_equal(iw, cw * DHF_HEATMAP_PNG_SCALE);
    assert_int_equal(ih, ch * DHF_HEATMAP_PNG_SCALE);
    /* a bigger grid is a bigger canvas */
    int cw1, ch1;
    dhf_heatmap_canvas_size(1, L, &cw1, &ch1);
    assert_true(cw > cw1);
    assert_int_equal(ch, ch1);
}

static void test_refusals(void **state)
{
    float w[2] = {0.5f, 0.5f};
    const int64_t labels[2] = {0, 1};
    char path[160];
    snprintf(path, sizeof path, "%s/out.jpg", tmp_dir);
    assert_int_equal(dhf_heatmap_write(w, 2, 1, labels, NULL, NULL, path), -1);
    assert_non_null(strstr(dhf_err_msg(), "must end in .png"));
    snprintf(path, sizeof path, "%s/nan.png", tmp_dir);
    w[1] = INFINITY;
    assert_int_equal(dhf_heatmap_write(w, 2, 1, labels, NULL, NULL, path), -1);
    assert_non_null(strstr(dhf_err_msg(), "weight 1"));
    assert_false(dhf_path_exists(path));
    w[1] = 0.5f;
    assert_int_equal(dhf_heatmap_write(w, 0, 1, labels, NULL, NULL, path), -1);
    assert_int_equal(
        dhf_heatmap_write(w, 2, 1, labels, NULL, NULL, "/nonexistent-dir/x/mixing.png"), -1);
    assert_non_null(strstr(dhf_err_msg(), "/nonexistent-dir/x/mixing"));
}

/* A checkpoint with raw mixing weights ln(k), config with the given mode. */
static void write_ckpt(const char *path, const char *mode, int S, int L, const int64_t *ts,
                       int n_values)
{
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    snprintf(cfg.diffusion_mode, sizeof cfg.diffusion_mode, "%s", mode);
    snprintf(cfg.run_name, sizeof cfg.run_name, "hm-run");
    cfg.save_timestep.n = S;
    for (int s = 0; s < S; s++)
        cfg.save_timestep.v[s] = ts[s];
    char *json = dhf_config_to_json(&cfg);
    float raw[64];
    for (int i = 0; i < n_values; i++)
        raw[i] = logf((float)(i + 1));
    const int64_t shape[1] = {n_values};
    dhf_tensor t = NULL;
    assert_int_equal(dhf_from_buffer(raw, DHF_F32, shape, 1, &t), DHF_OK);
    dhf_ckpt_entry e = {"mixing_weights", t, NULL, NULL};
    dhf_ckpt_meta m;
    dhf_ckpt_meta_init(&m);
    m.step = 300;
    snprintf(m.run_name, sizeof m.run_name, "hm-run");
    m.config_json = json;
    if (dhf_ckpt_save(path, &e, 1, &m) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_free(t);
    free(json);
    (void)L;
}

static void test_from_checkpoint(void **state)
{
    enum { S = 3, L = 2 };
    const int64_t ts[S] = {10, 5, 0};
    char ckpt[160], png[160], csv[160];
    snprintf(ckpt, sizeof ckpt, "%s/best.safetensors", tmp_dir);
    snprintf(png, sizeof png, "%s/ck.png", tmp_dir);
    snprintf(csv, sizeof csv, "%s/ck.csv", tmp_dir);
    const double total = 21.0;   /* 1 + 2 + ... + 6 */

    for (int mode = 0; mode < 2; mode++) {
        write_ckpt(ckpt, mode ? "generation" : "inversion", S, L, ts, S * L);
        int gs = 0, gl = 0;
        if (dhf_heatmap_from_checkpoint(ckpt, NULL, png, &gs, &gl) != 0)
            fail_msg("%s", dhf_err_msg());
        assert_int_equal(gs, S);
        assert_int_equal(gl, L);
        int64_t labels[S];
        double vals[L * S];
        read_csv(csv, S, L, labels, vals);
        for (int s = 0; s < S; s++)   /* inversion: 0, 5, 10; generation: 10, 5, 0 */
            assert_int_equal(labels[s], mode ? ts[s] : ts[S - 1 - s]);
        /* storage order is kept: column s holds weights[s*L + l] whatever the labels */
        for (int l = 0; l < L; l++)
            for (int s = 0; s < S; s++)
                assert_float_equal(vals[l * S + s], (s * L + l + 1) / total, 2e-7);
    }
    /* a mixing_weights length that is not a multiple of S */
    write_ckpt(ckpt, "inversion", S, L, ts, 7);
    assert_int_equal(dhf_heatmap_from_checkpoint(ckpt, NULL, png, NULL, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'mixing_weights'"));
    assert_non_null(strstr(dhf_err_msg(), "S = 3"));
    /* not a checkpoint */
    assert_int_equal(dhf_heatmap_from_checkpoint(csv, NULL, png, NULL, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), csv));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_column_labels),
        cmocka_unit_test(test_softmax_by_hand),
        cmocka_unit_test(test_write_files),
        cmocka_unit_test(test_equal_weights_and_big_grid),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_from_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
