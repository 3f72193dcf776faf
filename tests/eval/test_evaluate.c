/* test_evaluate.c — a whole evaluation run on a tiny SPair-layout dataset
 * written here: an "identity" provider (one-hot per load pixel) makes every
 * prediction hand-computable, so the PCK numbers, the prediction dump, the
 * protocol record and the `dhf pck` recomputation (bit-identical metrics) are
 * all checked; the image-based provider runs the same set end to end; errors
 * name the pair and the file.
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
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "eval/dataset.h"
#include "eval/evaluate.h"
#include "eval/predictions.h"
#include "eval/provider_image.h"

static char tmpdir[256], root[512];

static void pathf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    assert_true(k > 0 && (size_t)k < n);
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(dhf_write_file_atomic(path, text, strlen(text)), 0);
}

/* A smooth colour pattern so the image provider has something to match. */
static void write_image(const char *path, int w, int h)
{
    dhf_image img;
    assert_int_equal(dhf_image_alloc(&img, w, h), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.rgb + 3 * ((size_t)y * w + x);
            p[0] = (uint8_t)(255 * x / (w - 1));
            p[1] = (uint8_t)(255 * y / (h - 1));
            p[2] = (uint8_t)((x * 7 + y * 3) % 256);
        }
    assert_int_equal(dhf_image_save_jpeg(path, &img, 95), 0);
    dhf_image_free(&img);
}

/* pair annotation JSON in the official format. */
static void write_pair(const char *stem, const char *src, const char *trg, const char *cat, int sw, int sh,
                       int tw, int th, const char *sbox, const char *tbox, const char *skps, const char *tkps,
                       const char *ids, int viewpoint)
{
    char path[1024], text[2048];
    pathf(path, sizeof path, "%s/PairAnnotation/test/%s.json", root, stem);
    snprintf(text, sizeof text,
             "{\"src_imname\": \"%s\", \"trg_imname\": \"%s\", \"category\": \"%s\","
             " \"src_imsize\": [%d, %d, 3], \"trg_imsize\": [%d, %d, 3],"
             " \"src_bndbox\": %s, \"trg_bndbox\": %s, \"src_kps\": %s, \"trg_kps\": %s, \"kps_ids\": %s,"
             " \"viewpoint_variation\": %d, \"scale_variation\": 0, \"truncation\": 0, \"occlusion\": 1,"
             " \"mirror\": 0}",
             src, trg, cat, sw, sh, tw, th, sbox, tbox, skps, tkps, ids, viewpoint);
    write_text(path, text);
}

/* bird: b1 64x48, b2 40x80; cat: c1 50x50, c2 100x60. Three test pairs. */
static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dhf_test_evaluate_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(root, sizeof root, "%s/SPair-71k", tmpdir);
    const char *dirs[] = {"JPEGImages/bird", "JPEGImages/cat", "PairAnnotation/test", "Layout/large"};
    char p[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        if (dhf_mkdir_p(p) != 0)
            return -1;
    }
    snprintf(p, sizeof p, "%s/JPEGImages/bird/b1.jpg", root);
    write_image(p, 64, 48);
    snprintf(p, sizeof p, "%s/JPEGImages/bird/b2.jpg", root);
    write_image(p, 40, 80);
    snprintf(p, sizeof p, "%s/JPEGImages/cat/c1.jpg", root);
    write_image(p, 50, 50);
    snprintf(p, sizeof p, "%s/JPEGImages/cat/c2.jpg", root);
    write_image(p, 100, 60);
    write_pair("1-b1-b2:bird", "b1.jpg", "b2.jpg", "bird", 64, 48, 40, 80, "[0, 0, 64, 48]", "[0, 0, 40, 80]",
               "[[8, 6], [40, 30], [63, 47]]", "[[5, 10], [25, 58], [0, 0]]", "[\"0\", \"1\", \"2\"]", 0);
    write_pair("2-b2-b1:bird", "b2.jpg", "b1.jpg", "bird", 40, 80, 64, 48, "[0, 0, 40, 80]", "[10, 10, 40, 30]",
               "[[5, 10], [20, 40]]", "[[8, 6], [32, 30]]", "[\"0\", \"1\"]", 0);
    write_pair("3-c1-c2:cat", "c1.jpg", "c2.jpg", "cat", 50, 50, 100, 60, "[0, 0, 50, 50]", "[0, 0, 100, 60]",
               "[[25, 25], [0, 49]]", "[[50, 30], [10, 52.5]]", "[\"3\", \"4\"]", 2);
    snprintf(p, sizeof p, "%s/Layout/large/test.txt", root);
    write_text(p, "1-b1-b2:bird\n2-b2-b1:bird\n3-c1-c2:cat\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the identity provider: one-hot per load pixel, no resize (h = w = L) ---- */

#define ID_L 8

static int identity_describe(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    int *calls = ctx;
    (*calls)++;
    if (in->load_size != ID_L)
        return dhf_err_set("identity provider: %s: load size %d, expected %d", in->key, in->load_size, ID_L);
    int C = ID_L * ID_L;
    out->data = calloc((size_t)C * C, sizeof(float));
    if (!out->data)
        return dhf_err_set("out of memory");
    for (int p = 0; p < C; p++)
        out->data[(size_t)p * C + p] = 1.0f;
    out->c = C;
    out->h = out->w = ID_L;
    return 0;
}

static int failing_describe(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    (void)ctx, (void)out;
    return dhf_err_set("cannot describe %s", in->key);
}

static dhf_dataset open_set(void)
{
    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    dhf_dataset_spec spec = {.dataset = "spair", .root = root, .split = "test"};
    if (dhf_dataset_open(&spec, &ds) != 0 || dhf_dataset_resolve_images(&ds) != 0)
        fail_msg("dataset: %s", dhf_err_msg());
    return ds;
}

static cJSON *read_json(const char *path)
{
    char *text = NULL;
    if (dhf_read_file(path, &text, NULL) != 0)
        fail_msg("%s", dhf_err_msg());
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static void near(double got, double want)
{
    if (!(fabs(got - want) <= 1e-15))
        fail_msg("got %.17g, expected %.17g", got, want);
}

/* Predictions (hand-computed, L = 8, load = x * (8 / W) rounded, back = col * (W / 8)):
 *   pair 1 bird b1 64x48 -> b2 40x80: (8,6)->(1,1)->(5,10) d 0; (40,30)->(5,5)->(25,50) d 8;
 *          (63,47)->(7.875,7.83) clipped (7,7)->(35,70) d sqrt(35²+70²). img 80, bbox 80.
 *   pair 2 bird b2 -> b1 64x48: (5,10)->(1,1)->(8,6) d 0; (20,40)->(4,4)->(32,24) d 6.
 *          img 64, bbox [10,10,40,30] -> 30.
 *   pair 3 cat c1 50x50 -> c2 100x60: (25,25)->(4,4)->(50,30) d 0; (0,49)->(0,7)->(0,52.5) d 10.
 *          img 100, bbox 100.
 * α = 0.1: img thresholds 8, 6.4, 10 -> 2/3, 2/2, 2/2; bbox 8, 3, 10 -> 2/3, 1/2, 2/2.
 * α = 0.05: img 4, 3.2, 5 -> 1/3, 1/2, 1/2; bbox 4, 1.5, 5 -> 1/3, 1/2, 1/2. */
static void test_identity_run(void **state)
{
    (void)state;
    dhf_dataset ds = open_set();
    assert_int_equal((int)ds.n_pairs, 3);
    int calls = 0;
    dhf_provider prov = {.name = "identity", .description = "one-hot per load pixel", .needs_image = false,
                         .ctx = &calls, .describe = identity_describe};
    dhf_eval_opts o;
    dhf_eval_opts_default(&o);
    o.match.load_size = ID_L;
    o.n_alphas = 2;
    o.alphas[0] = 0.05, o.alphas[1] = 0.1;
    o.progress = false;
    char out[600];
    pathf(out, sizeof out, "%s/run1", tmpdir);
    o.out_dir = out;
    dhf_eval_result res;
    if (dhf_eval_run(&ds, &prov, &o, &res) != 0)
        fail_msg("%s", dhf_err_msg());
    const dhf_pck_report *r = &res.report;
    assert_int_equal(calls, 4);   /* 4 distinct images, each described once */
    assert_int_equal(r->overall.n_keypoints, 7);
    assert_int_equal(r->overall.n_pairs, 3);
    /* α = 0.1 (index 1) */
    near(r->overall.per_keypoint[DHF_PCK_IMG][1], 6.0 / 7.0);
    near(r->overall.per_image[DHF_PCK_IMG][1], (2.0 / 3.0 + 1.0 + 1.0) / 3.0);
    near(r->overall.per_keypoint[DHF_PCK_BBOX][1], 5.0 / 7.0);
    near(r->overall.per_image[DHF_PCK_BBOX][1], (2.0 / 3.0 + 0.5 + 1.0) / 3.0);
    /* α = 0.05 */
    near(r->overall.per_keypoint[DHF_PCK_IMG][0], 3.0 / 7.0);
    near(r->overall.per_keypoint[DHF_PCK_BBOX][0], 3.0 / 7.0);
    near(r->overall.per_image[DHF_PCK_IMG][0], (1.0 / 3.0 + 0.5 + 0.5) / 3.0);
    /* categories: bird = pairs 1, 2; cat = pair 3 */
    assert_string_equal(r->category_names[0], "bird");
    near(r->per_category[0].per_keypoint[DHF_PCK_IMG][1], 4.0 / 5.0);
    near(r->per_category[1].per_keypoint[DHF_PCK_IMG][1], 1.0);
    near(r->category_mean[0][DHF_PCK_IMG][1], (4.0 / 5.0 + 1.0) / 2.0);
    /* breakdown by viewpoint: 0 = pairs 1, 2 (4/5 at 0.1), 2 = pair 3 */
    assert_int_equal(r->n_buckets[DHF_PCK_ATTR_VIEWPOINT], 2);
    near(r->buckets[DHF_PCK_ATTR_VIEWPOINT][0].stats.per_keypoint[DHF_PCK_IMG][1], 4.0 / 5.0);
    assert_int_equal(r->buckets[DHF_PCK_ATTR_VIEWPOINT][1].value, 2);
    assert_int_equal(r->n_buckets[DHF_PCK_ATTR_OCCLUSION], 1);
    assert_non_null(strstr(res.summary, "PCK@0.1 img 85.71 bbox 71.43"));

    /* The dump: one line per keypoint with the fields documented. */
    char path[700];
    pathf(path, sizeof path, "%s/predictions.jsonl", out);
    char *text = NULL;
    assert_int_equal(dhf_read_file(path, &text, NULL), 0);
    int lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 7);
    char *nl = strchr(text, '\n');
    *nl = '\0';
    cJSON *first = cJSON_Parse(text);
    free(text);
    assert_non_null(first);
    assert_string_equal(cJSON_GetObjectItem(first, "pair_id")->valuestring, "1-b1-b2:bird");
    assert_string_equal(cJSON_GetObjectItem(first, "category")->valuestring, "bird");
    assert_true(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "pred_xy"), 0)->valuedouble == 5.0);
    assert_true(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "pred_xy"), 1)->valuedouble == 10.0);
    assert_true(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "src_xy"), 0)->valuedouble == 8.0);
    assert_true(cJSON_GetObjectItem(first, "distance")->valuedouble == 0.0);
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "threshold_img"), "0.1")->valuedouble == 8.0);
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "threshold_bbox"), "0.05")->valuedouble == 4.0);
    assert_true(cJSON_GetObjectItem(first, "kp_id")->valuedouble == 0);
    assert_true(cJSON_GetObjectItem(first, "viewpoint_variation")->valuedouble == 0);
    cJSON_Delete(first);

    /* `dhf pck`'s path: read the dump back, recompute, identical metrics. */
    dhf_predictions preds;
    if (dhf_predictions_load(path, &preds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(preds.n_pairs, 3);
    assert_int_equal(preds.n_alphas, 2);
    dhf_pck_report back;
    assert_int_equal(dhf_pck_compute(preds.kps, preds.n_kps, preds.n_pairs, (const char *const *)preds.categories,
                                     preds.n_categories, preds.alphas, preds.n_alphas, &back),
                     0);
    pathf(path, sizeof path, "%s/results.json", out);
    cJSON *results = read_json(path);
    cJSON *mine = dhf_pck_report_to_json(&back);
    if (dhf_eval_compare_metrics(mine, cJSON_GetObjectItem(results, "metrics")) != 0)
        fail_msg("%s", dhf_err_msg());
    cJSON_Delete(mine);
    dhf_pck_report_free(&back);
    dhf_predictions_free(&preds);

    /* The protocol record. */
    const cJSON *pr = cJSON_GetObjectItem(results, "protocol");
    assert_string_equal(cJSON_GetObjectItem(pr, "dataset")->valuestring, ds.name);
    assert_string_equal(cJSON_GetObjectItem(pr, "split")->valuestring, "test");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(pr, "subset"), "hash")->valuestring, ds.subset.hash);
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(pr, "subset"), "count")->valuedouble == 3);
    assert_true(cJSON_GetObjectItem(pr, "load_size")->valuedouble == ID_L);
    assert_string_equal(cJSON_GetObjectItem(pr, "resize")->valuestring, "stretch");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(pr, "matcher"), "name")->valuestring, "argmax");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(pr, "alphas")), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(pr, "averaging"), "headline")->valuestring,
                        "per_keypoint");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(pr, "descriptor_source"), "provider")->valuestring, "identity");
    assert_non_null(strstr(cJSON_GetObjectItem(results, "summary")->valuestring, "PCK@0.1"));
    cJSON_Delete(results);

    pathf(path, sizeof path, "%s/results.md", out);
    assert_int_equal(dhf_read_file(path, &text, NULL), 0);
    assert_non_null(strstr(text, "| bird | 2 | 5 |"));
    assert_non_null(strstr(text, "## By viewpoint_variation"));
    free(text);

    dhf_eval_result_free(&res);
    dhf_dataset_free(&ds);
}

/* Image provider end to end, stretch and pad: files written, recomputation equal. */
static void test_image_provider_run(void **state)
{
    (void)state;
    const dhf_resize_policy policies[2] = {DHF_RESIZE_STRETCH, DHF_RESIZE_PAD};
    for (int k = 0; k < 2; k++) {
        dhf_dataset ds = open_set();
        dhf_provider prov;
        dhf_provider_args args = {.arg = k ? "patch" : NULL};
        assert_int_equal(dhf_provider_image_open(&args, &prov), 0);
        assert_string_equal(prov.name, k ? "image:patch" : "image");
        dhf_eval_opts o;
        dhf_eval_opts_default(&o);
        o.match.load_size = 32;
        o.match.resize = policies[k];
        o.progress = false;
        char out[600], path[700];
        pathf(out, sizeof out, "%s/image%d", tmpdir, k);
        o.out_dir = out;
        dhf_eval_result res;
        if (dhf_eval_run(&ds, &prov, &o, &res) != 0)
            fail_msg("%s", dhf_err_msg());
        assert_int_equal(res.report.overall.n_keypoints, 7);
        pathf(path, sizeof path, "%s/predictions.jsonl", out);
        dhf_predictions preds;
        if (dhf_predictions_load(path, &preds) != 0)
            fail_msg("%s", dhf_err_msg());
        dhf_pck_report back;
        assert_int_equal(dhf_pck_compute(preds.kps, preds.n_kps, preds.n_pairs,
                                         (const char *const *)preds.categories, preds.n_categories, preds.alphas,
                                         preds.n_alphas, &back),
                         0);
        cJSON *a = dhf_pck_report_to_json(&back), *b = dhf_pck_report_to_json(&res.report);
        if (dhf_eval_compare_metrics(a, b) != 0)
            fail_msg("%s", dhf_err_msg());
        /* Every prediction inside the target image (pad mode never lands on padding). */
        for (size_t i = 0; i < preds.n_kps; i++)
            assert_true(preds.kps[i].pred[0] >= -0.5 && preds.kps[i].pred[1] >= -0.5);
        cJSON_Delete(a), cJSON_Delete(b);
        pathf(path, sizeof path, "%s/results.json", out);
        cJSON *results = read_json(path);
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(results, "protocol"), "resize")->valuestring,
                            k ? "pad" : "stretch");
        cJSON_Delete(results);
        dhf_pck_report_free(&back);
        dhf_predictions_free(&preds);
        dhf_eval_result_free(&res);
        dhf_provider_close(&prov);
        dhf_dataset_free(&ds);
    }
}

static void test_image_descriptors(void **state)
{
    (void)state;
    dhf_image img;
    assert_int_equal(dhf_image_alloc(&img, 8, 4), 0);
    for (int i = 0; i < 8 * 4 * 3; i++)
        img.rgb[i] = (uint8_t)(i * 5);
    dhf_descriptors d;
    assert_int_equal(dhf_image_descriptors(&img, 4, DHF_RESIZE_STRETCH, false, &d), 0);
    assert_int_equal(d.c, 6);
    assert_int_equal(d.h, 4);
    /* u of cell column 0 of 4 over 8 px: centre x = 0.5*2 - 0.5 = 0.5 -> 2*(1/8) - 1 = -0.75 */
    assert_true(fabsf(d.data[3 * 16 + 0] - -0.75f) < 1e-6f);
    assert_true(d.data[5 * 16 + 7] == 1.0f);
    free(d.data);
    /* Pad: 8x4 in an 8x8 square, offset 2 rows: grid rows 0 and 3 of 4 are padding (zero). */
    assert_int_equal(dhf_image_descriptors(&img, 4, DHF_RESIZE_PAD, true, &d), 0);
    assert_int_equal(d.c, 54);
    for (int c = 0; c < d.c; c++) {
        assert_true(d.data[(size_t)c * 16 + 0] == 0.0f);   /* row 0 */
        assert_true(d.data[(size_t)c * 16 + 12] == 0.0f);  /* row 3 */
    }
    assert_true(d.data[29 * 16 + 5] == 1.0f);   /* row 1, col 1: its own (centre) constant channel */
    free(d.data);
    dhf_image_free(&img);
    dhf_provider prov;
    dhf_provider_args bad = {.arg = "sift"};
    assert_int_equal(dhf_provider_image_open(&bad, &prov), -1);
    assert_non_null(strstr(dhf_err_msg(), "image:sift"));
}

static void test_errors_name_pair_and_file(void **state)
{
    (void)state;
    dhf_dataset ds = open_set();
    dhf_provider prov = {.name = "broken", .describe = failing_describe};
    dhf_eval_opts o;
    dhf_eval_opts_default(&o);
    o.progress = false;
    dhf_eval_result res;
    assert_int_equal(dhf_eval_run(&ds, &prov, &o, &res), -1);
    assert_non_null(strstr(dhf_err_msg(), "1-b1-b2:bird"));
    assert_non_null(strstr(dhf_err_msg(), "b1.jpg"));
    /* A corrupt image: the provider needs pixels, the decoder's error names the file. */
    char p[700];
    pathf(p, sizeof p, "%s/JPEGImages/cat/c2.jpg", root);
    char *saved = NULL;
    size_t saved_len = 0;
    assert_int_equal(dhf_read_file(p, &saved, &saved_len), 0);
    write_text(p, "not an image at all");
    assert_int_equal(dhf_provider_image_open(NULL, &prov), 0);
    assert_int_equal(dhf_eval_run(&ds, &prov, &o, &res), -1);
    assert_non_null(strstr(dhf_err_msg(), "3-c1-c2:cat"));
    assert_non_null(strstr(dhf_err_msg(), "c2.jpg"));
    assert_int_equal(dhf_write_file_atomic(p, saved, saved_len), 0);
    free(saved);
    dhf_provider_close(&prov);
    dhf_dataset_free(&ds);

    /* Malformed predictions: FILE:LINE and the field. */
    pathf(p, sizeof p, "%s/bad.jsonl", tmpdir);
    write_text(p, "{\"pair_id\": \"a\", \"category\": \"x\", \"gt_xy\": [1, 2], \"pred_xy\": [1, 2],"
                  " \"target_size\": [10, 10], \"target_bbox\": [0, 0, 5, 5]}\n\n"
                  "{\"pair_id\": \"b\", \"category\": \"x\", \"gt_xy\": [1, \"2\"], \"pred_xy\": [1, 2]}\n");
    dhf_predictions preds;
    assert_int_equal(dhf_predictions_load(p, &preds), -1);
    assert_non_null(strstr(dhf_err_msg(), "bad.jsonl:3"));
    assert_non_null(strstr(dhf_err_msg(), "gt_xy"));
    write_text(p, "{\"pair_id\": \"a\", \"category\": \"x\", \"gt_xy\": [1, 2], \"pred_xy\": [1, 2]}\n");
    assert_int_equal(dhf_predictions_load(p, &preds), -1);
    assert_non_null(strstr(dhf_err_msg(), "target_size"));
    write_text(p, "\n");
    assert_int_equal(dhf_predictions_load(p, &preds), -1);
    assert_non_null(strstr(dhf_err_msg(), "empty"));
    /* A minimal foreign file scores: sizes given directly, pairs grouped by id. */
    write_text(p, "{\"pair_id\": \"a\", \"category\": \"x\", \"gt_xy\": [0, 0], \"pred_xy\": [3, 4], \"img_size\": 100, \"bbox_size\": 20}\n"
                  "{\"pair_id\": \"b\", \"category\": \"y\", \"gt_xy\": [0, 0], \"pred_xy\": [30, 40], \"img_size\": 100, \"bbox_size\": 20}\n"
                  "{\"pair_id\": \"a\", \"category\": \"x\", \"gt_xy\": [0, 0], \"pred_xy\": [0, 1], \"img_size\": 100, \"bbox_size\": 20}\n");
    assert_int_equal(dhf_predictions_load(p, &preds), 0);
    assert_int_equal(preds.n_pairs, 2);
    assert_int_equal(preds.n_categories, 2);
    assert_int_equal(preds.n_alphas, 0);
    const double a[1] = {0.1};
    dhf_pck_report r;
    assert_int_equal(dhf_pck_compute(preds.kps, preds.n_kps, preds.n_pairs, (const char *const *)preds.categories,
                                     preds.n_categories, a, 1, &r),
                     0);
    near(r.overall.per_keypoint[DHF_PCK_IMG][0], 2.0 / 3.0);
    near(r.overall.per_image[DHF_PCK_IMG][0], 0.5);
    near(r.overall.per_keypoint[DHF_PCK_BBOX][0], 1.0 / 3.0);   /* threshold 2: only d = 1 */
    dhf_pck_report_free(&r);
    dhf_predictions_free(&preds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_run),
        cmocka_unit_test(test_image_provider_run),
        cmocka_unit_test(test_image_descriptors),
        cmocka_unit_test(test_errors_name_pair_and_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
