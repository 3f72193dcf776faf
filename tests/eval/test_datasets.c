/* test_datasets.c — dataset readers and subsets: a synthetic SPair-71k layout
 * and a synthetic CUB-200-2011 layout written into a temp dir by the test
 * itself (tiny JPEG/PNG images via image.h), read back field by field; the
 * paper's pair-list fixtures; malformed inputs each giving their message;
 * deterministic subset draws and hashes (expected values computed with an
 * independent Python implementation of splitmix64/FNV-1a); `data check`.
 *
 * Usage: test_datasets [FIXTURE_DIR]   (default ../shared/fixtures/dhf-annotations)
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "eval/data_check.h"
#include "eval/dataset.h"

static char tmpdir[256];
static char spair_root[512], cub_root[512], data_root[512];
static const char *fixture_dir = "../shared/fixtures/dhf-annotations";

/* ---- helpers ---------------------------------------------------------------- */

static void pathf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(dhf_write_file_atomic(path, text, strlen(text)), 0);
}

static void write_image(const char *path, int w, int h, int png)
{
    dhf_image img;
    assert_int_equal(dhf_image_alloc(&img, w, h), 0);
    for (int i = 0; i < w * h * 3; i++)
        img.rgb[i] = (uint8_t)(i * 7);
    if (png)
        assert_int_equal(dhf_image_save_png(path, &img), 0);
    else
        assert_int_equal(dhf_image_save_jpeg(path, &img, 90), 0);
    dhf_image_free(&img);
}

static void mkdirs(const char *path)
{
    if (dhf_mkdir_p(path) != 0)
        fail_msg("mkdir %s: %s", path, dhf_err_msg());
}

static void expect_msg(const char *fragment1, const char *fragment2)
{
    const char *m = dhf_err_msg();
    if (!strstr(m, fragment1) || (fragment2 && !strstr(m, fragment2)))
        fail_msg("message '%s' should contain '%s'%s%s", m, fragment1, fragment2 ? " and " : "",
                 fragment2 ? fragment2 : "");
}

static cJSON *int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *points(const int *xy, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, int_array(xy + 2 * i, 2));
    return a;
}

static void write_json(const char *path, cJSON *j)
{
    char *s = cJSON_Print(j);
    write_text(path, s);
    free(s);
    cJSON_Delete(j);
}

/* A complete SPair pair annotation, as the official files have it (kps_ids as
 * strings, extra fields pair_id and filename). */
typedef struct {
    const char *src, *trg, *category;
    int src_size[2], trg_size[2];
    int src_box[4], trg_box[4];
    int n;
    int src_kps[16], trg_kps[16];
    int ids[8];
    int viewpoint, scale, trunc, occl, mirror;
    const char *src_pose, *trg_pose;
} spair_pair_spec;

static cJSON *spair_pair_json(const spair_pair_spec *s, int pair_id)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "pair_id", pair_id);
    cJSON_AddStringToObject(j, "filename", "ignored.json");
    cJSON_AddStringToObject(j, "src_imname", s->src);
    cJSON_AddStringToObject(j, "trg_imname", s->trg);
    int ssz[3] = {s->src_size[0], s->src_size[1], 3}, tsz[3] = {s->trg_size[0], s->trg_size[1], 3};
    cJSON_AddItemToObject(j, "src_imsize", int_array(ssz, 3));
    cJSON_AddItemToObject(j, "trg_imsize", int_array(tsz, 3));
    cJSON_AddItemToObject(j, "src_bndbox", int_array(s->src_box, 4));
    cJSON_AddItemToObject(j, "trg_bndbox", int_array(s->trg_box, 4));
    cJSON_AddStringToObject(j, "category", s->category);
    cJSON_AddStringToObject(j, "src_pose", s->src_pose);
    cJSON_AddStringToObject(j, "trg_pose", s->trg_pose);
    cJSON_AddItemToObject(j, "src_kps", points(s->src_kps, s->n));
    cJSON_AddItemToObject(j, "trg_kps", points(s->trg_kps, s->n));
    cJSON *ids = cJSON_CreateArray();
    for (int i = 0; i < s->n; i++) {
        char b[16];
        snprintf(b, sizeof b, "%d", s->ids[i]);
        cJSON_AddItemToArray(ids, cJSON_CreateString(b));
    }
    cJSON_AddItemToObject(j, "kps_ids", ids);
    cJSON_AddNumberToObject(j, "mirror", s->mirror);
    cJSON_AddNumberToObject(j, "viewpoint_variation", s->viewpoint);
    cJSON_AddNumberToObject(j, "scale_variation", s->scale);
    cJSON_AddNumberToObject(j, "truncation", s->trunc);
    cJSON_AddNumberToObject(j, "occlusion", s->occl);
    return j;
}

static const spair_pair_spec pair_b1_b2 = {
    "b1.jpg", "b2.jpg", "bird", {40, 30}, {50, 20}, {2, 3, 38, 29}, {0, 0, 50, 20},
    3, {5, 6, 10, 12, 30, 20}, {7, 8, 20, 10, 45, 15}, {0, 4, 11},
    1, 2, 0, 1, 0, "Frontal", "Left"};
static const spair_pair_spec pair_b2_b1 = {
    "b2.jpg", "b1.jpg", "bird", {50, 20}, {40, 30}, {0, 0, 50, 20}, {2, 3, 38, 29},
    2, {7, 8, 20, 10}, {5, 6, 10, 12}, {0, 4},
    0, 0, 1, 0, 1, "Left", "Frontal"};
static const spair_pair_spec pair_c1_c2 = {
    "c1.jpg", "c2.jpg", "cat", {30, 30}, {24, 36}, {1, 1, 29, 29}, {0, 2, 24, 36},
    1, {15, 15}, {12, 20}, {3},
    2, 1, 0, 0, 0, "Unspecified", "Rear"};
static const spair_pair_spec pair_c2_c1 = {
    "c2.jpg", "c1.jpg", "cat", {24, 36}, {30, 30}, {0, 2, 24, 36}, {1, 1, 29, 29},
    1, {12, 20}, {15, 15}, {3},
    0, 0, 0, 0, 0, "Rear", "Unspecified"};

static void add_spair_pair(const char *root, const char *split, const char *stem,
                           const spair_pair_spec *s, int pair_id)
{
    char p[1024];
    pathf(p, sizeof p, "%s/PairAnnotation/%s/%s.json", root, split, stem);
    write_json(p, spair_pair_json(s, pair_id));
}

static void write_image_annotation(const char *root, const char *cat, const char *stem, int w,
                                   int h)
{
    char p[1024], text[512];
    pathf(p, sizeof p, "%s/ImageAnnotation/%s/%s.json", root, cat, stem);
    snprintf(text, sizeof text,
             "{\"filename\": \"%s.jpg\", \"image_width\": %d, \"image_height\": %d, "
             "\"image_depth\": 3, \"category\": \"%s\", \"kps\": {\"0\": [1, 2], \"1\": null}}",
             stem, w, h, cat);
    write_text(p, text);
}

/* SPair-71k layout: categories bird (b1 40x30, b2 50x20) and cat (c1 30x30,
 * c2 24x36 stored as PNG behind a .jpg name: decoding goes by content).
 * trn: 1 bird pair; val: 1 cat pair; test: 2 bird + 1 cat pairs. */
static void build_spair(const char *root)
{
    char p[1024];
    const char *dirs[] = {"JPEGImages/bird", "JPEGImages/cat", "ImageAnnotation/bird",
                          "ImageAnnotation/cat", "PairAnnotation/trn", "PairAnnotation/val",
                          "PairAnnotation/test", "Layout/large"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        pathf(p, sizeof p, "%s/%s", root, dirs[i]);
        mkdirs(p);
    }
    pathf(p, sizeof p, "%s/JPEGImages/bird/b1.jpg", root);
    write_image(p, 40, 30, 0);
    pathf(p, sizeof p, "%s/JPEGImages/bird/b2.jpg", root);
    write_image(p, 50, 20, 0);
    pathf(p, sizeof p, "%s/JPEGImages/cat/c1.jpg", root);
    write_image(p, 30, 30, 0);
    pathf(p, sizeof p, "%s/JPEGImages/cat/c2.jpg", root);
    write_image(p, 24, 36, 1);
    write_image_annotation(root, "bird", "b1", 40, 30);
    write_image_annotation(root, "bird", "b2", 50, 20);
    write_image_annotation(root, "cat", "c1", 30, 30);
    write_image_annotation(root, "cat", "c2", 24, 36);

    add_spair_pair(root, "trn", "10-b2-b1:bird", &pair_b2_b1, 10);
    add_spair_pair(root, "val", "20-c2-c1:cat", &pair_c2_c1, 20);
    add_spair_pair(root, "test", "1-b1-b2:bird", &pair_b1_b2, 1);
    add_spair_pair(root, "test", "2-b2-b1:bird", &pair_b2_b1, 2);
    add_spair_pair(root, "test", "3-c1-c2:cat", &pair_c1_c2, 3);
    pathf(p, sizeof p, "%s/Layout/large/trn.txt", root);
    write_text(p, "10-b2-b1:bird\n");
    pathf(p, sizeof p, "%s/Layout/large/val.txt", root);
    write_text(p, "20-c2-c1:cat\n");
    pathf(p, sizeof p, "%s/Layout/large/test.txt", root);
    write_text(p, "1-b1-b2:bird\n2-b2-b1:bird\r\n3-c1-c2:cat\n\n");
}

/* CUB layout: classes 001.Alpha (a1 train; a2, a3, a4 test) and 002.Beta
 * (b1, b2 test); 3 parts. Visible parts: a2 {1,2}, a3 {2,3}, a4 {3},
 * b1 {1,2,3}, b2 {1}, a1 all. Test candidate pairs (shared part):
 * Alpha (2,3) (3,2) (3,6) (6,3); Beta (4,5) (5,4). */
static void build_cub(const char *root)
{
    char p[1024];
    pathf(p, sizeof p, "%s/images/001.Alpha", root);
    mkdirs(p);
    pathf(p, sizeof p, "%s/images/002.Beta", root);
    mkdirs(p);
    pathf(p, sizeof p, "%s/parts", root);
    mkdirs(p);
    const char *names[6] = {"001.Alpha/a1.jpg", "001.Alpha/a2.jpg", "001.Alpha/a3.jpg",
                            "002.Beta/b1.jpg",  "002.Beta/b2.jpg",  "001.Alpha/a4.jpg"};
    const int sizes[6][2] = {{60, 40}, {64, 48}, {50, 50}, {40, 60}, {32, 32}, {80, 30}};
    for (int i = 0; i < 6; i++) {
        pathf(p, sizeof p, "%s/images/%s", root, names[i]);
        write_image(p, sizes[i][0], sizes[i][1], 0);
    }
    pathf(p, sizeof p, "%s/images.txt", root);
    write_text(p, "1 001.Alpha/a1.jpg\n2 001.Alpha/a2.jpg\n3 001.Alpha/a3.jpg\n"
                  "4 002.Beta/b1.jpg\n5 002.Beta/b2.jpg\n6 001.Alpha/a4.jpg\n");
    pathf(p, sizeof p, "%s/image_class_labels.txt", root);
    write_text(p, "1 1\n2 1\n3 1\n4 2\n5 2\n6 1\n");
    pathf(p, sizeof p, "%s/train_test_split.txt", root);
    write_text(p, "1 1\n2 0\n3 0\n4 0\n5 0\n6 0\n");
    pathf(p, sizeof p, "%s/bounding_boxes.txt", root);
    write_text(p, "1 1.0 2.0 50.0 30.0\n2 4.0 5.0 40.0 30.0\n3 0.0 0.0 50.0 50.0\n"
                  "4 5.5 6.5 20.0 40.0\n5 1.0 1.0 30.0 30.0\n6 10.0 0.0 60.0 30.0\n");
    pathf(p, sizeof p, "%s/parts/parts.txt", root);
    write_text(p, "1 beak\n2 left eye\n3 tail\n");
    pathf(p, sizeof p, "%s/parts/part_locs.txt", root);
    write_text(p, "1 1 10.0 10.0 1\n1 2 12.0 11.0 1\n1 3 30.0 20.0 1\n"
                  "2 1 11.0 12.0 1\n2 2 13.5 14.5 1\n2 3 0.0 0.0 0\n"
                  "3 1 0.0 0.0 0\n3 2 21.0 22.0 1\n3 3 40.0 41.0 1\n"
                  "4 1 7.0 8.0 1\n4 2 9.0 10.0 1\n4 3 20.0 50.0 1\n"
                  "5 1 3.0 4.0 1\n5 2 0.0 0.0 0\n5 3 0.0 0.0 0\n"
                  "6 1 0.0 0.0 0\n6 2 0.0 0.0 0\n6 3 70.0 25.0 1\n");
}

/* ---- basic primitives ---------------------------------------------------------- */

static void test_fnv_and_splitmix(void **state)
{
    (void)state;
    assert_true(dhf_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    assert_true(dhf_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    uint64_t s = 0;
    assert_true(dhf_splitmix64(&s) == 0xe220a8397b1dcdafull);
    assert_true(dhf_splitmix64(&s) == 0x6e789e6aa1b965f4ull);
    assert_true(dhf_splitmix64(&s) == 0x06c45d188009454full);
    size_t out[10];
    dhf_draw_indices(10, 3, 0, out);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 5);
    assert_int_equal(out[2], 9);
    dhf_draw_indices(10, 3, 42, out);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 4);
    dhf_draw_indices(3, 5, 1, out); /* k >= n: all, in order */
    assert_int_equal(out[0], 0);
    assert_int_equal(out[2], 2);
}

/* ---- SPair-71k ------------------------------------------------------------------ */

static void test_spair_read_fields(void **state)
{
    (void)state;
    dhf_dataset ds;
    if (dhf_spair_load(spair_root, "test", &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_string_equal(ds.name, "spair-71k");
    assert_string_equal(ds.split, "test");
    assert_int_equal(ds.n_categories, 2);
    assert_string_equal(ds.categories[0], "bird");
    assert_string_equal(ds.categories[1], "cat");
    assert_int_equal(ds.n_pairs, 3);
    const dhf_pair *p = &ds.pairs[0]; /* Layout order is kept */
    assert_string_equal(p->id, "1-b1-b2:bird");
    assert_string_equal(p->category, "bird");
    assert_string_equal(p->src_key, "bird/b1.jpg");
    assert_string_equal(p->trg_key, "bird/b2.jpg");
    char want[1024];
    pathf(want, sizeof want, "%s/JPEGImages/bird/b1.jpg", spair_root);
    assert_string_equal(p->src_path, want);
    assert_int_equal(p->src_size[0], 40);
    assert_int_equal(p->src_size[1], 30);
    assert_int_equal(p->trg_size[0], 50);
    assert_int_equal(p->trg_size[1], 20);
    assert_true(p->src_bbox[0] == 2 && p->src_bbox[1] == 3 && p->src_bbox[2] == 38 &&
                p->src_bbox[3] == 29);
    assert_true(p->trg_bbox[2] == 50 && p->trg_bbox[3] == 20);
    assert_int_equal(p->n_kps, 3);
    assert_true(p->src_kps[0] == 5 && p->src_kps[1] == 6 && p->src_kps[4] == 30 &&
                p->src_kps[5] == 20);
    assert_true(p->trg_kps[2] == 20 && p->trg_kps[3] == 10);
    assert_int_equal(p->kp_ids[0], 0);
    assert_int_equal(p->kp_ids[1], 4);
    assert_int_equal(p->kp_ids[2], 11);
    assert_int_equal(p->visible[0] + p->visible[1] + p->visible[2], 3);
    assert_int_equal(p->viewpoint_variation, 1);
    assert_int_equal(p->scale_variation, 2);
    assert_int_equal(p->truncation, 0);
    assert_int_equal(p->occlusion, 1);
    assert_int_equal(p->mirror, 0);
    assert_string_equal(p->src_pose, "Frontal");
    assert_string_equal(p->trg_pose, "Left");
    assert_string_equal(ds.pairs[2].id, "3-c1-c2:cat");
    assert_string_equal(ds.subset.name, "full");
    assert_int_equal(ds.subset.count, 3);
    assert_string_equal(ds.subset.hash, "79395845d94c9a4e");
    /* Images agree with the annotation (c2 is a PNG named .jpg). */
    if (dhf_dataset_resolve_images(&ds) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_dataset_free(&ds);

    assert_int_equal(dhf_spair_load(spair_root, "trn", &ds), 0);
    assert_int_equal(ds.n_pairs, 1);
    assert_string_equal(ds.pairs[0].id, "10-b2-b1:bird");
    dhf_dataset_free(&ds);
    assert_int_equal(dhf_spair_load(spair_root, "training", &ds), -1);
    expect_msg("split 'training'", "trn, val or test");
}

static void test_spair_subset_per_category(void **state)
{
    (void)state;
    dhf_dataset_spec spec = {.dataset = "spair", .root = spair_root, .split = "test",
                             .pairs_per_category = 1, .seed = 7};
    dhf_dataset a, b;
    assert_int_equal(dhf_dataset_open(&spec, &a), 0);
    assert_int_equal(dhf_dataset_open(&spec, &b), 0);
    assert_int_equal(a.n_pairs, 2);
    /* seed 7: bird draws index 0 of the id-sorted bird pairs (Python reference) */
    assert_string_equal(a.pairs[0].id, "1-b1-b2:bird");
    assert_string_equal(a.pairs[1].id, "3-c1-c2:cat");
    assert_string_equal(a.subset.name, "per-category-1");
    assert_int_equal(a.subset.per_category, 1);
    assert_true(a.subset.seed == 7);
    assert_int_equal(a.subset.count, 2);
    assert_string_equal(a.subset.hash, b.subset.hash);
    for (size_t i = 0; i < a.n_pairs; i++)
        assert_string_equal(a.pairs[i].id, b.pairs[i].id);
    dhf_dataset_free(&a);
    dhf_dataset_free(&b);

    /* Different seeds reach both bird pairs. */
    int seen[2] = {0, 0};
    for (uint64_t seed = 0; seed < 16; seed++) {
        spec.seed = seed;
        assert_int_equal(dhf_dataset_open(&spec, &a), 0);
        seen[strcmp(a.pairs[0].id, "1-b1-b2:bird") == 0 ? 0 : 1]++;
        dhf_dataset_free(&a);
    }
    assert_true(seen[0] > 0 && seen[1] > 0);

    /* N larger than a category keeps all of it. */
    spec.pairs_per_category = 5;
    assert_int_equal(dhf_dataset_open(&spec, &a), 0);
    assert_int_equal(a.n_pairs, 3);
    assert_string_equal(a.subset.hash, "79395845d94c9a4e"); /* same ids as the full split */
    dhf_dataset_free(&a);
}

static void test_spair_subset_id_list(void **state)
{
    (void)state;
    char list[600];
    pathf(list, sizeof list, "%s/ids.txt", tmpdir);
    write_text(list, "# chosen pairs\n3-c1-c2:cat\n\n1-b1-b2:bird\n");
    dhf_dataset_spec spec = {.dataset = "spair", .root = spair_root, .split = "test",
                             .pair_list = list};
    dhf_dataset ds;
    if (dhf_dataset_open(&spec, &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.n_pairs, 2);
    assert_string_equal(ds.pairs[0].id, "3-c1-c2:cat");
    assert_string_equal(ds.pairs[1].id, "1-b1-b2:bird");
    assert_string_equal(ds.subset.name, "list:ids.txt");
    assert_string_equal(ds.subset.list_path, list);
    dhf_dataset_free(&ds);

    write_text(list, "1-b1-b2:bird\n9-x-y:bird\n");
    assert_int_equal(dhf_dataset_open(&spec, &ds), -1);
    expect_msg("ids.txt:2", "'9-x-y:bird' is not in");
}

/* ---- malformed SPair pair files --------------------------------------------------- */

static char *const spair_cats[2] = {"bird", "cat"};

static void expect_pair_error(const char *stem, cJSON *j, const char *frag1, const char *frag2)
{
    char p[1024];
    pathf(p, sizeof p, "%s/bad/%s.json", tmpdir, stem);
    write_json(p, j);
    dhf_pair pair;
    assert_int_equal(dhf_spair_read_pair(p, spair_root, spair_cats, 2, &pair), -1);
    expect_msg(p, frag1); /* every message names the file */
    if (frag2)
        expect_msg(frag2, NULL);
    assert_null(pair.id);
}

static void test_spair_malformed(void **state)
{
    (void)state;
    char p[1024];
    pathf(p, sizeof p, "%s/bad", tmpdir);
    mkdirs(p);

    cJSON *j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_DeleteItemFromObject(j, "trg_kps");
    expect_pair_error("1-b1-b2:bird", j, "missing required field 'trg_kps'", NULL);

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_ReplaceItemInObject(j, "src_bndbox", cJSON_CreateString("2 3 38 29"));
    expect_pair_error("2-b1-b2:bird", j, "field 'src_bndbox'", "expected an array");

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_ReplaceItemInObject(j, "category", cJSON_CreateNumber(3));
    expect_pair_error("3-b1-b2:bird", j, "field 'category': expected a string, got a number",
                      NULL);

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(j, "trg_kps"), 2);
    expect_pair_error("4-b1-b2:bird", j, "keypoint count mismatch", "'src_kps' has 3, 'trg_kps' has 2");

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(j, "kps_ids"), 0);
    expect_pair_error("5-b1-b2:bird", j, "field 'kps_ids' has 2 entries", NULL);

    spair_pair_spec outside = pair_b1_b2;
    outside.src_box[2] = 100; /* image is 40 wide */
    expect_pair_error("6-b1-b2:bird", spair_pair_json(&outside, 1), "field 'src_bndbox'",
                      "lies outside the 40x30 image");

    spair_pair_spec dragon = pair_b1_b2;
    dragon.category = "dragon";
    expect_pair_error("7-b1-b2:dragon", spair_pair_json(&dragon, 1),
                      "unknown category 'dragon'", "bird cat");

    /* category field disagreeing with the file name */
    expect_pair_error("8-b1-b2:cat", spair_pair_json(&pair_b1_b2, 1),
                      "field 'category' is 'bird' but the file name says 'cat'", NULL);

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_ReplaceItemInObject(j, "src_kps", cJSON_Parse("[[1, 2], [3, \"x\"], [5, 6]]"));
    expect_pair_error("9-b1-b2:bird", j, "field 'src_kps': element 1", NULL);

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_ReplaceItemInObject(j, "src_imsize", cJSON_Parse("[40.5, 30, 3]"));
    expect_pair_error("10-b1-b2:bird", j, "field 'src_imsize': element 0", "positive integer");

    j = spair_pair_json(&pair_b1_b2, 1);
    cJSON_ReplaceItemInObject(j, "mirror", cJSON_CreateString("no"));
    expect_pair_error("11-b1-b2:bird", j, "field 'mirror': expected an integer", NULL);

    /* syntax error: message names the line */
    pathf(p, sizeof p, "%s/bad/12-b1-b2:bird.json", tmpdir);
    write_text(p, "{\n  \"src_imname\": \"b1.jpg\",\n  \"trg_imname\" \"b2.jpg\"\n}\n");
    dhf_pair pair;
    assert_int_equal(dhf_spair_read_pair(p, spair_root, spair_cats, 2, &pair), -1);
    expect_msg(p, "invalid JSON near line 3");

    /* missing image: parses, fails when images are resolved */
    spair_pair_spec ghost = pair_b1_b2;
    ghost.src = "nope.jpg";
    pathf(p, sizeof p, "%s/bad/13-nope-b2:bird.json", tmpdir);
    write_json(p, spair_pair_json(&ghost, 13));
    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.pairs = calloc(1, sizeof(dhf_pair));
    ds.n_pairs = 1;
    assert_int_equal(dhf_spair_read_pair(p, spair_root, spair_cats, 2, &ds.pairs[0]), 0);
    assert_int_equal(dhf_dataset_resolve_images(&ds), -1);
    expect_msg("pair 13-nope-b2:bird: source image", "JPEGImages/bird/nope.jpg: cannot open");
    dhf_dataset_free(&ds);

    /* declared size disagreeing with the stored image */
    spair_pair_spec wrong = pair_b1_b2;
    wrong.src_size[0] = 41;
    pathf(p, sizeof p, "%s/bad/14-b1-b2:bird.json", tmpdir);
    write_json(p, spair_pair_json(&wrong, 14));
    memset(&ds, 0, sizeof ds);
    ds.pairs = calloc(1, sizeof(dhf_pair));
    ds.n_pairs = 1;
    assert_int_equal(dhf_spair_read_pair(p, spair_root, spair_cats, 2, &ds.pairs[0]), 0);
    assert_int_equal(dhf_dataset_resolve_images(&ds), -1);
    expect_msg("pair 14-b1-b2:bird: src_imsize is 41x30", "is 40x30");
    dhf_dataset_free(&ds);
}

/* ---- pair lists ------------------------------------------------------------------ */

static void test_pairlist_synthetic(void **state)
{
    (void)state;
    char list[600], image_root[600];
    pathf(list, sizeof list, "%s/pairs.json", tmpdir);
    pathf(image_root, sizeof image_root, "%s/JPEGImages", spair_root);
    /* one path with category folder, one bare name (looked up in cat/) */
    write_text(list, "[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                     " \"source_points\": [[5, 6], [10, 12]], \"target_points\": [[7, 8], [20, 10]],"
                     " \"category\": \"bird\", \"source_bounding_box\": [2, 3, 38, 29],"
                     " \"target_bounding_box\": [0, 0, 50, 20]},"
                     " {\"source_path\": \"c1.jpg\", \"target_path\": \"c2.jpg\","
                     " \"source_points\": [[15, 15]], \"target_points\": [[12, 20]],"
                     " \"category\": \"cat\", \"source_bounding_box\": [1, 1, 29, 29],"
                     " \"target_bounding_box\": [0, 2, 24, 36], \"mirror\": 1,"
                     " \"source_pose\": \"Frontal\", \"extra\": {\"ignored\": true}}]");
    dhf_dataset ds;
    if (dhf_pairlist_load(list, image_root, &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.n_pairs, 2);
    assert_string_equal(ds.pairs[0].id, "1-b1-b2:bird");
    assert_string_equal(ds.pairs[1].id, "2-c1-c2:cat");
    assert_string_equal(ds.pairs[1].src_key, "cat/c1.jpg");
    char want[1024];
    pathf(want, sizeof want, "%s/cat/c1.jpg", image_root);
    assert_string_equal(ds.pairs[1].src_path, want);
    assert_int_equal(ds.pairs[0].src_size[0], 0); /* unknown until resolved */
    assert_int_equal(ds.pairs[1].mirror, 1);
    assert_int_equal(ds.pairs[1].viewpoint_variation, -1);
    assert_string_equal(ds.pairs[1].src_pose, "Frontal");
    assert_string_equal(ds.pairs[1].trg_pose, "");
    assert_int_equal(ds.pairs[0].kp_ids[1], 1);
    assert_string_equal(ds.subset.name, "list:pairs.json");
    if (dhf_dataset_resolve_images(&ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.pairs[0].src_size[0], 40);
    assert_int_equal(ds.pairs[0].src_size[1], 30);
    assert_int_equal(ds.pairs[1].trg_size[0], 24);
    assert_int_equal(ds.pairs[1].trg_size[1], 36);
    dhf_dataset_free(&ds);

    /* dhf_dataset_open with a .json list: SPair's JPEGImages is the image root */
    dhf_dataset_spec spec = {.dataset = "spair", .root = spair_root, .split = "test",
                             .pair_list = list};
    assert_int_equal(dhf_dataset_open(&spec, &ds), 0);
    assert_string_equal(ds.name, "spair-71k");
    assert_int_equal(ds.n_pairs, 2);
    dhf_dataset_free(&ds);

    /* box outside the image: found once sizes are known */
    write_text(list, "[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                     " \"source_points\": [[5, 6]], \"target_points\": [[7, 8]],"
                     " \"category\": \"bird\", \"source_bounding_box\": [2, 3, 38, 29],"
                     " \"target_bounding_box\": [0, 0, 50, 200]}]");
    assert_int_equal(dhf_pairlist_load(list, image_root, &ds), 0);
    assert_int_equal(dhf_dataset_resolve_images(&ds), -1);
    expect_msg("pair 1-b1-b2:bird", "target bounding box': box [0, 0, 50, 200] lies outside the 50x20 image");
    dhf_dataset_free(&ds);
}

static void expect_list_error(const char *json, const char *frag1, const char *frag2)
{
    char list[600], image_root[600];
    pathf(list, sizeof list, "%s/bad_pairs.json", tmpdir);
    pathf(image_root, sizeof image_root, "%s/JPEGImages", spair_root);
    write_text(list, json);
    dhf_dataset ds;
    assert_int_equal(dhf_pairlist_load(list, image_root, &ds), -1);
    expect_msg(list, frag1);
    if (frag2)
        expect_msg(frag2, NULL);
    assert_int_equal(ds.n_pairs, 0);
}

static void test_pairlist_malformed(void **state)
{
    (void)state;
    expect_list_error("{\"source_path\": \"x\"}", "expected a JSON list of pairs, got an object",
                      NULL);
    expect_list_error("[]", "the pair list is empty", NULL);
    expect_list_error("[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                      " \"source_points\": [[5, 6]], \"target_points\": [[7, 8]],"
                      " \"source_bounding_box\": [2, 3, 38, 29],"
                      " \"target_bounding_box\": [0, 0, 50, 20]}]",
                      "element 0: missing required field 'category'", NULL);
    expect_list_error("[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                      " \"source_points\": [[5, 6], [1, 1]], \"target_points\": [[7, 8]],"
                      " \"category\": \"bird\", \"source_bounding_box\": [2, 3, 38, 29],"
                      " \"target_bounding_box\": [0, 0, 50, 20]}]",
                      "keypoint count mismatch", "'source_points' has 2, 'target_points' has 1");
    expect_list_error("[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                      " \"source_points\": [[5, 6]], \"target_points\": [[7, 8]],"
                      " \"category\": \"bird\", \"source_bounding_box\": [2, 3, 38],"
                      " \"target_bounding_box\": [0, 0, 50, 20]}]",
                      "field 'source_bounding_box': expected 4 numbers", NULL);
    expect_list_error("[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                      " \"source_points\": [[5, 6]], \"target_points\": [[7, 8]],"
                      " \"category\": \"unicorn\", \"source_bounding_box\": [2, 3, 38, 29],"
                      " \"target_bounding_box\": [0, 0, 50, 20]}]",
                      "unknown category 'unicorn'", NULL);
    expect_list_error("[{\"source_path\": \"bird/b1.jpg\", \"target_path\": \"bird/b2.jpg\","
                      " \"source_points\": \"5 6\", \"target_points\": [[7, 8]],"
                      " \"category\": \"bird\", \"source_bounding_box\": [2, 3, 38, 29],"
                      " \"target_bounding_box\": [0, 0, 50, 20]}]",
                      "field 'source_points': expected an array of [x, y], got a string", NULL);
}

/* ---- the authors' pair-list files (fixtures) ------------------------------------------ */

static void fixture_path(char *out, size_t n, const char *name)
{
    pathf(out, n, "%s/%s", fixture_dir, name);
    if (!dhf_path_exists(out))
        fail_msg("fixture missing: %s", out);
}

static void test_fixture_test6(void **state)
{
    (void)state;
    char path[1024];
    fixture_path(path, sizeof path, "spair_71k_test-6.json");
    dhf_dataset ds;
    /* images are not shipped: the image root need not exist to parse */
    if (dhf_pairlist_load(path, "/nonexistent/JPEGImages", &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.n_pairs, 6);
    const dhf_pair *p = &ds.pairs[0];
    assert_string_equal(p->id, "1-2011_001863-2010_002195:pottedplant");
    assert_string_equal(p->category, "pottedplant");
    assert_string_equal(p->src_key, "pottedplant/2011_001863.jpg");
    assert_string_equal(p->trg_key, "pottedplant/2010_002195.jpg");
    assert_string_equal(p->src_path, "/nonexistent/JPEGImages/2011_001863.jpg");
    assert_int_equal(p->n_kps, 4);
    assert_true(p->src_kps[0] == 3 && p->src_kps[1] == 383);
    assert_true(p->src_kps[6] == 149 && p->src_kps[7] == 470);
    assert_true(p->trg_kps[0] == 145 && p->trg_kps[1] == 394);
    assert_true(p->src_bbox[0] == 2 && p->src_bbox[1] == 1 && p->src_bbox[2] == 372 &&
                p->src_bbox[3] == 500);
    assert_true(p->trg_bbox[0] == 110 && p->trg_bbox[1] == 275 && p->trg_bbox[2] == 227 &&
                p->trg_bbox[3] == 444);
    assert_string_equal(p->src_pose, "Unspecified");
    assert_string_equal(p->trg_pose, "Unspecified");
    assert_int_equal(p->mirror, 0);
    assert_int_equal(p->viewpoint_variation, 0);
    assert_int_equal(p->scale_variation, -1);
    assert_int_equal(p->src_size[0], 0);
    assert_string_equal(ds.pairs[5].id, "6-2010_003297-2008_007277:horse");
    /* no category folders: the list's own categories, sorted */
    assert_int_equal(ds.n_categories, 6);
    assert_string_equal(ds.categories[0], "aeroplane");
    assert_string_equal(ds.categories[5], "pottedplant");
    assert_string_equal(ds.subset.name, "list:spair_71k_test-6.json");
    assert_int_equal(ds.subset.count, 6);
    assert_string_equal(ds.subset.hash, "b9d1e87be6a55ac8");
    dhf_dataset_free(&ds);
}

static void check_360(const char *name, const char *hash, int total_kps, const char *first_src,
                      double x0, double y0)
{
    char path[1024];
    fixture_path(path, sizeof path, name);
    dhf_dataset ds;
    if (dhf_pairlist_load(path, "/nonexistent/JPEGImages", &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.n_pairs, 360);
    assert_int_equal(ds.n_categories, DHF_SPAIR_NUM_CATEGORIES);
    for (int k = 0; k < ds.n_categories; k++)
        assert_string_equal(ds.categories[k], dhf_spair_categories[k]);
    int per_cat[DHF_SPAIR_NUM_CATEGORIES] = {0}, kps = 0;
    for (size_t i = 0; i < ds.n_pairs; i++) {
        int k = dhf_spair_category_index(ds.pairs[i].category);
        assert_true(k >= 0);
        per_cat[k]++;
        kps += ds.pairs[i].n_kps;
    }
    for (int k = 0; k < DHF_SPAIR_NUM_CATEGORIES; k++)
        assert_int_equal(per_cat[k], 20);
    assert_int_equal(kps, total_kps);
    assert_string_equal(ds.pairs[0].src_key, first_src);
    assert_true(ds.pairs[0].src_kps[0] == x0 && ds.pairs[0].src_kps[1] == y0);
    assert_string_equal(ds.subset.hash, hash);
    /* 20 per category of a 20-per-category list is the list itself */
    char before[17];
    memcpy(before, ds.subset.hash, sizeof before);
    assert_int_equal(dhf_subset_per_category(&ds, 20, 3), 0);
    assert_int_equal(ds.n_pairs, 360);
    assert_string_equal(ds.subset.hash, before);
    /* 5 per category: 90 pairs, reproducible */
    assert_int_equal(dhf_subset_per_category(&ds, 5, 3), 0);
    assert_int_equal(ds.n_pairs, 90);
    char name5[300];
    pathf(name5, sizeof name5, "list:%s/per-category-5", name);
    assert_string_equal(ds.subset.name, name5);
    dhf_dataset again;
    assert_int_equal(dhf_pairlist_load(path, "/nonexistent/JPEGImages", &again), 0);
    assert_int_equal(dhf_subset_per_category(&again, 5, 3), 0);
    assert_string_equal(again.subset.hash, ds.subset.hash);
    dhf_dataset_free(&again);
    dhf_dataset_free(&ds);
}

static void test_fixture_360(void **state)
{
    (void)state;
    check_360("spair_71k_test-360.json", "4e30ac4347fa30d7", 2529, "train/2009_005246.jpg", 207,
              201);
    check_360("spair_71k_val-360.json", "2b11c5fc776cffd5", 2615, "dog/2008_007494.jpg", 220, 16);
}

/* ---- CUB-200-2011 ----------------------------------------------------------------- */

static void test_cub_all_pairs(void **state)
{
    (void)state;
    dhf_dataset ds;
    if (dhf_cub_load(cub_root, NULL, &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_string_equal(ds.name, "cub-200-2011");
    assert_string_equal(ds.split, "test");
    assert_int_equal(ds.n_categories, 2);
    assert_string_equal(ds.categories[0], "001.Alpha");
    assert_int_equal(ds.n_pairs, 6);
    const char *ids[6] = {"2-3:001.Alpha", "3-2:001.Alpha", "3-6:001.Alpha",
                          "6-3:001.Alpha", "4-5:002.Beta",  "5-4:002.Beta"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(ds.pairs[i].id, ids[i]);
    const dhf_pair *p = &ds.pairs[0]; /* a2 -> a3: only part 2 visible in both */
    assert_string_equal(p->category, "001.Alpha");
    assert_string_equal(p->src_key, "001.Alpha/a2.jpg");
    assert_int_equal(p->n_kps, 1);
    assert_int_equal(p->kp_ids[0], 2);
    assert_true(p->src_kps[0] == 13.5 && p->src_kps[1] == 14.5);
    assert_true(p->trg_kps[0] == 21.0 && p->trg_kps[1] == 22.0);
    /* x y w h -> x1 y1 x2 y2 */
    assert_true(p->src_bbox[0] == 4 && p->src_bbox[1] == 5 && p->src_bbox[2] == 44 &&
                p->src_bbox[3] == 35);
    assert_int_equal(p->viewpoint_variation, -1);
    p = &ds.pairs[4]; /* b1 -> b2: part 1 only */
    assert_int_equal(p->n_kps, 1);
    assert_true(p->src_bbox[0] == 5.5 && p->src_bbox[3] == 46.5);
    assert_string_equal(ds.subset.name, "full");
    if (dhf_dataset_resolve_images(&ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.pairs[0].src_size[0], 64);
    assert_int_equal(ds.pairs[0].src_size[1], 48);
    assert_int_equal(ds.pairs[0].trg_size[0], 50);
    dhf_dataset_free(&ds);

    dhf_cub_options train = {.split = "train"};
    assert_int_equal(dhf_cub_load(cub_root, &train, &ds), -1); /* one train image: no pairs */
    expect_msg("no train-split image pairs", NULL);
}

static void test_cub_per_class_draw(void **state)
{
    (void)state;
    dhf_dataset_spec spec = {.dataset = "cub", .root = cub_root, .pairs_per_category = 1,
                             .seed = 0};
    dhf_dataset ds;
    assert_int_equal(dhf_dataset_open(&spec, &ds), 0);
    assert_int_equal(ds.n_pairs, 2);
    /* Python reference: Alpha candidate 1 of 4, Beta candidate 0 of 2 */
    assert_string_equal(ds.pairs[0].id, "3-2:001.Alpha");
    assert_string_equal(ds.pairs[1].id, "4-5:002.Beta");
    assert_string_equal(ds.subset.name, "per-category-1");
    char hash0[17];
    memcpy(hash0, ds.subset.hash, sizeof hash0);
    dhf_dataset_free(&ds);
    spec.seed = 5;
    assert_int_equal(dhf_dataset_open(&spec, &ds), 0);
    assert_string_equal(ds.pairs[0].id, "3-6:001.Alpha");
    assert_string_equal(ds.pairs[1].id, "4-5:002.Beta");
    assert_true(strcmp(ds.subset.hash, hash0) != 0);
    assert_true(ds.subset.seed == 5);
    dhf_dataset_free(&ds);
}

static void test_cub_pair_list(void **state)
{
    (void)state;
    char list[600];
    pathf(list, sizeof list, "%s/cub_pairs.txt", tmpdir);
    write_text(list, "# src trg\n3 2\n002.Beta/b1.jpg 002.Beta/b2.jpg\n");
    dhf_cub_options opt = {.pair_list = list};
    dhf_dataset ds;
    if (dhf_cub_load(cub_root, &opt, &ds) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(ds.n_pairs, 2);
    assert_string_equal(ds.pairs[0].id, "3-2:001.Alpha");
    assert_string_equal(ds.pairs[1].id, "4-5:002.Beta");
    assert_string_equal(ds.subset.name, "list:cub_pairs.txt");
    dhf_dataset_free(&ds);

    write_text(list, "2 4\n");
    assert_int_equal(dhf_cub_load(cub_root, &opt, &ds), -1);
    expect_msg("cub_pairs.txt:1", "different classes");
    write_text(list, "1 2\n");
    assert_int_equal(dhf_cub_load(cub_root, &opt, &ds), -1);
    expect_msg("cub_pairs.txt:1", "image 1 is not in the test split");
    write_text(list, "2 3\n2 6\n");
    assert_int_equal(dhf_cub_load(cub_root, &opt, &ds), -1);
    expect_msg("cub_pairs.txt:2", "share no visible part");
    write_text(list, "2 99\n");
    assert_int_equal(dhf_cub_load(cub_root, &opt, &ds), -1);
    expect_msg("cub_pairs.txt:1", "image '99' is not in images.txt");
}

static void test_cub_malformed(void **state)
{
    (void)state;
    char root[600], p[700];
    pathf(root, sizeof root, "%s/cub_bad", tmpdir);
    build_cub(root);
    dhf_dataset ds;

    pathf(p, sizeof p, "%s/bounding_boxes.txt", root);
    write_text(p, "1 1 2 50 30\n2 4 5 forty 30\n");
    assert_int_equal(dhf_cub_load(root, NULL, &ds), -1);
    expect_msg("bounding_boxes.txt:2", "expected '<image_id> <x> <y> <width> <height>'");

    write_text(p, "1 1 2 50 30\n2 4 5 40 30\n3 0 0 50 50\n4 5 6 20 40\n5 1 1 30 30\n");
    assert_int_equal(dhf_cub_load(root, NULL, &ds), -1);
    expect_msg("bounding_boxes.txt: no box for image 6", NULL);

    write_text(p, "1 1 2 50 30\n2 4 5 40 30\n3 0 0 50 50\n4 5 6 20 40\n5 1 1 30 30\n"
                  "6 10 0 60 30\n7 0 0 1 1\n");
    assert_int_equal(dhf_cub_load(root, NULL, &ds), -1);
    expect_msg("bounding_boxes.txt:7", "image id 7 is not in images.txt");

    /* box outside the image (a4 is 80x30) */
    write_text(p, "1 1 2 50 30\n2 4 5 40 30\n3 0 0 50 50\n4 5 6 20 40\n5 1 1 30 30\n"
                  "6 10 0 60 90\n");
    assert_int_equal(dhf_cub_load(root, NULL, &ds), 0);
    assert_int_equal(dhf_dataset_resolve_images(&ds), -1);
    expect_msg("lies outside the 80x30 image", NULL);
    dhf_dataset_free(&ds);

    pathf(p, sizeof p, "%s/parts/part_locs.txt", root);
    write_text(p, "1 1 10 10 2\n");
    assert_int_equal(dhf_cub_load(root, NULL, &ds), -1);
    expect_msg("part_locs.txt:1", "visible must be 0 or 1");
    write_text(p, "1 9 10 10 1\n");
    assert_int_equal(dhf_cub_load(root, NULL, &ds), -1);
    expect_msg("part_locs.txt:1", "part id 9 is not in parts/parts.txt");

    pathf(p, sizeof p, "%s/images.txt", root);
    unlink(p);
    assert_int_equal(dhf_cub_load(root, NULL, &ds), -1);
    expect_msg("images.txt: missing", NULL);
}

/* ---- data check ------------------------------------------------------------------- */

static char *capture(int (*fn)(const char *, const char *, const dhf_data_check_options *),
                     const char *dir, const char *kind, bool strict, int *rc)
{
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    dhf_data_check_options opt = {.strict_official = strict, .out = out, .err = err};
    *rc = fn(dir, kind, &opt);
    long n1 = ftell(out), n2 = ftell(err);
    char *text = calloc((size_t)(n1 + n2 + 2), 1);
    rewind(out);
    rewind(err);
    size_t got = fread(text, 1, (size_t)n1, out);
    got += fread(text + got, 1, (size_t)n2, err);
    text[got] = '\0';
    fclose(out);
    fclose(err);
    return text;
}

static void expect_in(const char *text, const char *fragment)
{
    if (!strstr(text, fragment))
        fail_msg("output lacks '%s':\n%s", fragment, text);
}

static void test_data_check(void **state)
{
    (void)state;
    int rc;
    char *text = capture(dhf_data_check_dir, spair_root, NULL, false, &rc);
    if (rc != 0)
        fail_msg("check failed: %s\n%s", dhf_err_msg(), text);
    expect_in(text, "bird                   2       1       0       2");
    expect_in(text, "cat                    2       0       1       1");
    expect_in(text, "total                  4       1       1       3");
    expect_in(text, ": OK");
    free(text);

    text = capture(dhf_data_check_dir, spair_root, "spair", true, &rc);
    assert_int_equal(rc, -1);
    expect_in(text, "official SPair-71k has 1800 images, found 4");
    expect_in(text, "official SPair-71k test split has 12234 pairs, found 3");
    free(text);

    text = capture(dhf_data_check_dir, cub_root, NULL, false, &rc);
    if (rc != 0)
        fail_msg("check failed: %s\n%s", dhf_err_msg(), text);
    expect_in(text, "images 6 (train 1, test 5), classes 2, parts 3, part locations 18");
    expect_in(text, "001.Alpha                                  1       3           4");
    expect_in(text, "total                                      1       5           6");
    free(text);

    text = capture(dhf_data_check_dir, cub_root, "cub", true, &rc);
    assert_int_equal(rc, -1);
    expect_in(text, "official CUB-200-2011 has 11788 images, found 6");
    free(text);

    /* the parent folder holding both */
    text = capture(dhf_data_check_dir, data_root, NULL, false, &rc);
    if (rc != 0)
        fail_msg("check of %s failed: %s\n%s", data_root, dhf_err_msg(), text);
    expect_in(text, "SPair-71k at");
    expect_in(text, "CUB-200-2011 at");
    free(text);
    text = capture(dhf_data_check_dir, data_root, "cub", false, &rc);
    assert_int_equal(rc, 0);
    assert_null(strstr(text, "SPair-71k at"));
    free(text);

    /* nothing there */
    char empty[600];
    pathf(empty, sizeof empty, "%s/empty", tmpdir);
    mkdirs(empty);
    text = capture(dhf_data_check_dir, empty, NULL, false, &rc);
    assert_int_equal(rc, -1);
    expect_msg("no SPair-71k or CUB-200-2011 layout found", NULL);
    free(text);
}

/* A broken copy: a missing image, a missing pair file and a corrupt image are
 * all reported, not just the first. */
static void test_data_check_problems(void **state)
{
    (void)state;
    char root[600], p[800];
    pathf(root, sizeof root, "%s/spair_broken", tmpdir);
    build_spair(root);
    pathf(p, sizeof p, "%s/JPEGImages/cat/c1.jpg", root);
    unlink(p);
    pathf(p, sizeof p, "%s/JPEGImages/bird/b2.jpg", root);
    write_text(p, "not an image at all");
    pathf(p, sizeof p, "%s/Layout/large/val.txt", root);
    write_text(p, "20-c2-c1:cat\n21-c1-c2:cat\n");
    int rc;
    char *text = capture(dhf_data_check_dir, root, NULL, false, &rc);
    assert_int_equal(rc, -1);
    expect_in(text, "b2.jpg: not a JPEG or PNG image");
    expect_in(text, "PairAnnotation/val/21-c1-c2:cat.json: missing");
    expect_in(text, "target image");
    expect_in(text, "JPEGImages/cat/c1.jpg does not exist");
    expect_in(text, "FAILED");
    expect_msg("problems found", NULL);
    free(text);
}

/* ---- driver ----------------------------------------------------------------------- */

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        remove_tree(p);
    }
    closedir(d);
    rmdir(path);
}

static int setup_data(void **state)
{
    (void)state;
    pathf(data_root, sizeof data_root, "%s/data", tmpdir);
    pathf(spair_root, sizeof spair_root, "%s/SPair-71k", data_root);
    pathf(cub_root, sizeof cub_root, "%s/CUB_200_2011", data_root);
    build_spair(spair_root);
    build_cub(cub_root);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    setenv("DHF_PROGRESS", "0", 1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dhf_test_datasets_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest synthetic[] = {
        cmocka_unit_test(test_fnv_and_splitmix),
        cmocka_unit_test(test_spair_read_fields),
        cmocka_unit_test(test_spair_subset_per_category),
        cmocka_unit_test(test_spair_subset_id_list),
        cmocka_unit_test(test_spair_malformed),
        cmocka_unit_test(test_pairlist_synthetic),
        cmocka_unit_test(test_pairlist_malformed),
        cmocka_unit_test(test_cub_all_pairs),
        cmocka_unit_test(test_cub_per_class_draw),
        cmocka_unit_test(test_cub_pair_list),
        cmocka_unit_test(test_cub_malformed),
        cmocka_unit_test(test_data_check),
        cmocka_unit_test(test_data_check_problems),
    };
    const struct CMUnitTest fixtures[] = {
        cmocka_unit_test(test_fixture_test6),
        cmocka_unit_test(test_fixture_360),
    };
    int rc = cmocka_run_group_tests_name("datasets (synthetic)", synthetic, setup_data, NULL);
    /* Without any shared fixtures (a lone clone) the fixture group is skipped;
     * with the folder present a missing file fails, naming the path. */
    if (argc <= 1 && !dhf_is_dir("../shared/fixtures")) {
        fprintf(stderr, "../shared/fixtures absent: pair-list fixture tests skipped\n");
        remove_tree(tmpdir);
        return rc ? rc : 77;
    }
    rc |= cmocka_run_group_tests_name("datasets (pair-list fixtures)", fixtures, NULL, NULL);
    remove_tree(tmpdir);
    return rc;
}
