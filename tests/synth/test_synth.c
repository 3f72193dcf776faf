/* test_synth.c — `dhf synth`: the rasteriser and view maths against
 * hand-computed values, then a tiny generated set checked file by file
 * (layout, every JSON field, keypoints inside their images and equal to the
 * per-image annotation, image-disjoint splits, CUB tables), read back with the
 * dataset readers and `data check`, determinism across thread counts, seed
 * sensitivity, and the refusal to overwrite folders it did not write.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
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
#include "synth/synth.h"
#include "synth/synth_render.h"
#include "synth/synth_shapes.h"

/* ---- helpers ------------------------------------------------------------------ */

static char g_base[256];     /* mkdtemp root for the whole run */
static char g_out[512];      /* the shared tiny set: g_out/SPair-71k, g_out/CUB_200_2011 */

static void small_options(dhf_synth_options *o, uint64_t seed, int threads)
{
    dhf_synth_defaults(o);
    o->seed = seed;
    o->categories[0] = "car";
    o->categories[1] = "bird";
    o->n_categories = 2;
    o->images_per_category = 7; /* trn 2, val 2, test 3 */
    o->pairs_per_category = 4;
    o->cub_classes = 2;
    o->cub_images_per_class = 4;
    o->scene.min_size = 64;
    o->scene.max_size = 96;
    o->scene.samples = 2;
    o->threads = threads;
    o->quiet = true;
}

static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            remove_tree(child);
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

static cJSON *load_json(const char *path)
{
    char *text;
    size_t len;
    if (dhf_read_file(path, &text, &len) != 0)
        fail_msg("%s", dhf_err_msg());
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j)
        fail_msg("%s: not valid JSON", path);
    return j;
}

static const cJSON *field(const cJSON *j, const char *name, const char *where)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!f)
        fail_msg("%s: field '%s' missing", where, name);
    return f;
}

static int int_field(const cJSON *j, const char *name, const char *where)
{
    const cJSON *f = field(j, name, where);
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble))
        fail_msg("%s: field '%s' is not an integer", where, name);
    return f->valueint;
}

static const char *str_field(const cJSON *j, const char *name, const char *where)
{
    const cJSON *f = field(j, name, where);
    if (!cJSON_IsString(f))
        fail_msg("%s: field '%s' is not a string", where, name);
    return f->valuestring;
}

static void int_array(const cJSON *j, const char *name, const char *where, int *out, int n)
{
    const cJSON *f = field(j, name, where);
    if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) != n)
        fail_msg("%s: field '%s' is not an array of %d", where, name, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(f, i);
        if (!cJSON_IsNumber(e))
            fail_msg("%s: field '%s'[%d] is not a number", where, name, i);
        out[i] = e->valueint;
    }
}

/* Lines of a text file (without newlines); returns the count. */
static int read_lines(const char *path, char ***lines)
{
    char *text;
    size_t len;
    if (dhf_read_file(path, &text, &len) != 0)
        fail_msg("%s", dhf_err_msg());
    int n = 0, cap = 16;
    char **v = malloc(sizeof(char *) * (size_t)cap);
    for (char *s = text, *nl; *s; s = nl + 1) {
        nl = strchr(s, '\n');
        assert_non_null(nl); /* every line ends with a newline */
        *nl = '\0';
        if (n == cap)
            v = realloc(v, sizeof(char *) * (size_t)(cap *= 2));
        v[n++] = strdup(s);
    }
    free(text);
    *lines = v;
    return n;
}

static void free_lines(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Every regular file under dir, as paths relative to dir, sorted. */
static void list_tree(const char *dir, const char *rel, char ***out, int *n, int *cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char r[4096], full[8192];
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, r);
        if (dhf_is_dir(full)) {
            list_tree(dir, r, out, n, cap);
        } else {
            if (*n == *cap)
                *out = realloc(*out, sizeof(char *) * (size_t)(*cap = *cap ? *cap * 2 : 64));
            (*out)[(*n)++] = strdup(r);
        }
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sorted_tree(const char *dir, char ***out)
{
    int n = 0, cap = 0;
    *out = NULL;
    list_tree(dir, "", out, &n, &cap);
    qsort(*out, (size_t)n, sizeof(char *), cmp_str);
    return n;
}

/* 1 when the two trees hold the same file names with the same bytes. */
static int trees_identical(const char *a, const char *b, int *n_files, int *n_differ)
{
    char **fa, **fb;
    int na = sorted_tree(a, &fa), nb = sorted_tree(b, &fb);
    int same = na == nb;
    *n_files = na;
    *n_differ = 0;
    for (int i = 0; same && i < na; i++) {
        if (strcmp(fa[i], fb[i]) != 0) {
            same = 0;
            break;
        }
        char pa[8192], pb[8192];
        snprintf(pa, sizeof pa, "%s/%s", a, fa[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, fb[i]);
        char *da, *db;
        size_t la, lb;
        assert_int_equal(dhf_read_file(pa, &da, &la), 0);
        assert_int_equal(dhf_read_file(pb, &db, &lb), 0);
        if (la != lb || memcmp(da, db, la) != 0)
            (*n_differ)++;
        free(da);
        free(db);
    }
    free_lines(fa, na);
    free_lines(fb, nb);
    return same && *n_differ == 0;
}

/* ---- rasteriser and view ---------------------------------------------------------- */

static void test_shape_contains(void **state)
{
    (void)state;
    dhf_shape s;
    memset(&s, 0, sizeof s);
    /* ellipse rx=4, ry=2 rotated 90 deg: x extent 2, y extent 4 */
    dhf_shape_set_ellipse(&s, 10, 20, 4, 2, M_PI / 2);
    assert_int_equal(dhf_shape_finish(&s), 0);
    assert_true(fabs(s.bbox[0] - 8) < 1e-9 && fabs(s.bbox[2] - 12) < 1e-9);
    assert_true(fabs(s.bbox[1] - 16) < 1e-9 && fabs(s.bbox[3] - 24) < 1e-9);
    double rim;
    assert_true(dhf_shape_contains(&s, 10, 23.9, &rim, NULL, NULL));
    assert_true(fabs(rim - 3.9 / 4.0) < 1e-9);
    assert_false(dhf_shape_contains(&s, 11.9, 23.9, NULL, NULL, NULL));
    /* tapered capsule from (0,0) r=2 to (10,0) r=1: at x=5 the radius is 1.5 */
    memset(&s, 0, sizeof s);
    s.kind = DHF_SHAPE_CAPSULE;
    s.bx = 10;
    s.ra = 2;
    s.rb = 1;
    assert_int_equal(dhf_shape_finish(&s), 0);
    assert_true(dhf_shape_contains(&s, 5, 1.49, NULL, NULL, NULL));
    assert_false(dhf_shape_contains(&s, 5, 1.51, NULL, NULL, NULL));
    assert_true(dhf_shape_contains(&s, -1.9, 0, NULL, NULL, NULL)); /* round cap */
    assert_false(dhf_shape_contains(&s, 11.1, 0, NULL, NULL, NULL));
    /* L-shaped polygon: the notch is outside */
    memset(&s, 0, sizeof s);
    s.kind = DHF_SHAPE_POLYGON;
    const double vx[6] = {0, 4, 4, 2, 2, 0}, vy[6] = {0, 0, 2, 2, 4, 4};
    s.n = 6;
    memcpy(s.vx, vx, sizeof vx);
    memcpy(s.vy, vy, sizeof vy);
    assert_int_equal(dhf_shape_finish(&s), 0);
    assert_true(dhf_shape_contains(&s, 1, 3, NULL, NULL, NULL));
    assert_true(dhf_shape_contains(&s, 3, 1, NULL, NULL, NULL));
    assert_false(dhf_shape_contains(&s, 3, 3, NULL, NULL, NULL));
    /* degenerate shapes are errors, not crashes */
    memset(&s, 0, sizeof s);
    s.kind = DHF_SHAPE_POLYGON;
    s.n = 2;
    assert_int_equal(dhf_shape_finish(&s), -1);
    assert_non_null(strstr(dhf_err_msg(), "polygon"));
}

static void test_view_affine_and_roundtrip(void **state)
{
    (void)state;
    dhf_view v;
    memset(&v, 0, sizeof v);
    /* scene y up -> image y down, scale 10, origin at (50, 80) */
    const double A[6] = {10, 0, 50, 0, -10, 80};
    memcpy(v.A, A, sizeof A);
    v.pc_x = 50;
    v.pc_y = 50;
    v.p_scale = 50;
    assert_int_equal(dhf_view_prepare(&v), 0);
    double u, w, x, y;
    dhf_view_scene_to_image(&v, 1, 2, &u, &w);
    assert_true(fabs(u - 60) < 1e-12 && fabs(w - 60) < 1e-12);
    dhf_view_image_to_scene(&v, 60, 60, &x, &y);
    assert_true(fabs(x - 1) < 1e-12 && fabs(y - 2) < 1e-12);
    /* perspective about the centre: n = (60-50)/50 = 0.2, g = (0.1, 0):
     * forward n' = 0.2 / 1.02 -> u = 50 + 50 * 0.2 / 1.02 */
    v.g_x = 0.1;
    assert_int_equal(dhf_view_prepare(&v), 0);
    dhf_view_scene_to_image(&v, 1, 3, &u, &w);
    assert_true(fabs(u - (50 + 50 * 0.2 / 1.02)) < 1e-9);
    assert_true(fabs(w - 50) < 1e-9);
    /* with a smooth warp, forward then backward returns the point */
    v.n_rbf = 2;
    v.rbf_sigma = 20;
    v.rbf_x[0] = 40;
    v.rbf_y[0] = 60;
    v.rbf_dx[0] = 3;
    v.rbf_dy[0] = -2;
    v.rbf_x[1] = 70;
    v.rbf_y[1] = 30;
    v.rbf_dx[1] = -2.5;
    v.rbf_dy[1] = 1;
    assert_int_equal(dhf_view_prepare(&v), 0);
    for (int i = 0; i < 50; i++) {
        double sx = -3 + 0.13 * i, sy = 4 - 0.17 * i;
        dhf_view_scene_to_image(&v, sx, sy, &u, &w);
        dhf_view_image_to_scene(&v, u, w, &x, &y);
        assert_true(fabs(x - sx) < 1e-8 && fabs(y - sy) < 1e-8);
    }
    /* a warp strong enough to fold is refused */
    v.rbf_dx[0] = 40;
    assert_int_equal(dhf_view_prepare(&v), -1);
    assert_non_null(strstr(dhf_err_msg(), "contraction"));
}

static void test_render_disc_coverage(void **state)
{
    (void)state;
    /* a disc of radius 10 (scene = image units) on a solid background */
    dhf_background bg;
    memset(&bg, 0, sizeof bg);
    bg.upper.kind = DHF_PAINT_SOLID;
    bg.upper.a = (dhf_rgbf){0, 0, 1};
    bg.upper.scale = 1;
    dhf_shape disc;
    memset(&disc, 0, sizeof disc);
    dhf_shape_set_ellipse(&disc, 0, 0, 10, 10, 0);
    disc.paint.kind = DHF_PAINT_SOLID;
    disc.paint.a = (dhf_rgbf){1, 0, 0};
    assert_int_equal(dhf_shape_finish(&disc), 0);
    dhf_view v;
    memset(&v, 0, sizeof v);
    const double A[6] = {1, 0, 20, 0, -1, 16}; /* centre at pixel (20, 16) */
    memcpy(v.A, A, sizeof A);
    v.pc_x = 20;
    v.pc_y = 16;
    v.p_scale = 20;
    assert_int_equal(dhf_view_prepare(&v), 0);
    dhf_scene sc = {&bg, &disc, 1, &v, NULL, 0, 4};
    dhf_image img;
    assert_int_equal(dhf_image_alloc(&img, 41, 33), 0);
    float *cov = malloc(sizeof(float) * 41 * 33), *hid = malloc(sizeof(float) * 41 * 33);
    assert_int_equal(dhf_render_scene(&sc, &img, cov, hid), 0);
    const uint8_t *c = img.rgb + ((size_t)16 * 41 + 20) * 3;
    assert_int_equal(c[0], 255);
    assert_int_equal(c[2], 0);
    const uint8_t *corner = img.rgb;
    assert_int_equal(corner[0], 0);
    assert_int_equal(corner[2], 255);
    double area = 0;
    for (int i = 0; i < 41 * 33; i++) {
        area += cov[i];
        assert_true(hid[i] == 0.0f);
    }
    /* pi r^2 = 314.16; 16 samples per pixel estimate it within 1% */
    assert_true(fabs(area - M_PI * 100) < 3.2);
    /* an occluder over x >= 20.5 hides the object pixels there */
    dhf_shape occ;
    memset(&occ, 0, sizeof occ);
    occ.kind = DHF_SHAPE_POLYGON;
    occ.n = 4;
    const double ox[4] = {20.5, 41, 41, 20.5}, oy[4] = {-1, -1, 34, 34};
    memcpy(occ.vx, ox, sizeof ox);
    memcpy(occ.vy, oy, sizeof oy);
    occ.paint.a = (dhf_rgbf){0, 1, 0};
    assert_int_equal(dhf_shape_finish(&occ), 0);
    sc.occluders = &occ;
    sc.n_occluders = 1;
    assert_int_equal(dhf_render_scene(&sc, &img, cov, hid), 0);
    double hidden = 0;
    for (int i = 0; i < 41 * 33; i++)
        hidden += hid[i];
    /* the circular segment beyond x - 20 = 0.5: r^2 acos(d/r) - d sqrt(r^2 - d^2) = 147.09 */
    assert_true(fabs(hidden - (100 * acos(0.05) - 0.5 * sqrt(99.75))) < 1.5);
    const uint8_t *right = img.rgb + ((size_t)16 * 41 + 25) * 3;
    assert_int_equal(right[1], 255);
    free(cov);
    free(hid);
    dhf_image_free(&img);
}

static void test_templates_have_named_keypoints(void **state)
{
    (void)state;
    int n;
    const char *const *cats = dhf_synth_categories(&n);
    assert_true(n >= 6);
    for (int c = 0; c < n; c++) {
        const char *names[DHF_SYNTH_MAX_KPS];
        int k;
        assert_int_equal(dhf_synth_keypoint_names(cats[c], names, &k), 0);
        assert_true(k >= 6 && k <= 15);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < i; j++)
                assert_string_not_equal(names[i], names[j]);
        dhf_rng r;
        dhf_rng_seed(&r, 99);
        dhf_synth_model *m = malloc(sizeof *m);
        assert_int_equal(dhf_synth_build_model(cats[c], -1, &r, m), 0);
        assert_int_equal(m->n_kps, k);
        free(m);
    }
    /* the bird has CUB's 15 parts in CUB's order */
    const char *names[DHF_SYNTH_MAX_KPS];
    int k;
    assert_int_equal(dhf_synth_keypoint_names("bird", names, &k), 0);
    assert_int_equal(k, 15);
    assert_string_equal(names[0], "back");
    assert_string_equal(names[1], "beak");
    assert_string_equal(names[14], "throat");
    assert_int_equal(dhf_synth_keypoint_names("unicorn", names, &k), -1);
    assert_non_null(strstr(dhf_err_msg(), "unicorn"));
}

/* A keypoint marked visible lies on its own part: rendering only the owner's
 * group, the pixel under it is covered. Checked on many random instances via
 * the public pieces (model, pose, projection). */
static void test_visible_keypoints_on_silhouette(void **state)
{
    (void)state;
    dhf_synth_scene_opts o;
    dhf_synth_scene_defaults(&o);
    o.min_size = 80;
    o.max_size = 120;
    o.samples = 1;
    int n_cats;
    const char *const *cats = dhf_synth_categories(&n_cats);
    int checked = 0;
    for (int c = 0; c < n_cats; c++)
        for (int i = 0; i < 4; i++) {
            dhf_image img;
            dhf_synth_instance in;
            assert_int_equal(dhf_synth_render_instance(cats[c], -1, 1000 + 17 * i + c, &o, &img, &in), 0);
            assert_int_equal(img.width, in.width);
            assert_int_equal(img.height, in.height);
            assert_true(in.width != in.height);
            assert_true(in.bbox[0] >= 0 && in.bbox[1] >= 0 && in.bbox[2] <= in.width - 1 &&
                        in.bbox[3] <= in.height - 1 && in.bbox[0] < in.bbox[2] && in.bbox[1] < in.bbox[3]);
            int vis = 0;
            for (int k = 0; k < in.n_kps; k++) {
                if (in.kp_state[k] != DHF_KP_VISIBLE)
                    continue;
                vis++;
                long x = lround(in.kp[k][0]), y = lround(in.kp[k][1]);
                assert_true(x >= 0 && y >= 0 && x < in.width && y < in.height);
                /* visible keypoints are on the object: inside its box (1 px slack
                 * for anti-aliased outlines) */
                assert_true(x >= in.bbox[0] - 1 && x <= in.bbox[2] + 1 && y >= in.bbox[1] - 1 &&
                            y <= in.bbox[3] + 1);
                checked++;
            }
            assert_true(vis >= 2);
            dhf_image_free(&img);
        }
    assert_true(checked > 50);
}

/* ---- the generated set ---------------------------------------------------------- */

static int setup_set(void **state)
{
    (void)state;
    snprintf(g_base, sizeof g_base, "/tmp/dhf_test_synth_XXXXXX");
    if (!mkdtemp(g_base))
        return -1;
    snprintf(g_out, sizeof g_out, "%s/a", g_base);
    dhf_synth_options o;
    small_options(&o, 7, 2);
    dhf_synth_summary sum;
    if (dhf_synth_run(g_out, &o, &sum) != 0) {
        fprintf(stderr, "synth failed: %s\n", dhf_err_msg());
        return -1;
    }
    return 0;
}

static int teardown_set(void **state)
{
    (void)state;
    remove_tree(g_base);
    return 0;
}

static const char *const SPLITS[3] = {"trn", "val", "test"};

static void test_spair_layout_and_fields(void **state)
{
    (void)state;
    char root[1024], path[4096];
    snprintf(root, sizeof root, "%s/SPair-71k", g_out);
    const char *cats[2] = {"bird", "car"};
    /* images and image annotations */
    for (int c = 0; c < 2; c++)
        for (int i = 1; i <= 7; i++) {
            char where[4096];
            snprintf(path, sizeof path, "%s/JPEGImages/%s/%s_%06d.jpg", root, cats[c], cats[c], i);
            int w, h;
            if (dhf_image_size(path, &w, &h) != 0)
                fail_msg("%s", dhf_err_msg());
            assert_true(w >= 64 && w <= 96 && h >= 64 && h <= 96);
            snprintf(where, sizeof where, "%s/ImageAnnotation/%s/%s_%06d.json", root, cats[c], cats[c], i);
            cJSON *j = load_json(where);
            char fname[64];
            snprintf(fname, sizeof fname, "%s_%06d.jpg", cats[c], i);
            assert_string_equal(str_field(j, "filename", where), fname);
            str_field(j, "src_database", where);
            str_field(j, "src_annotation", where);
            str_field(j, "src_image", where);
            assert_int_equal(int_field(j, "image_width", where), w);
            assert_int_equal(int_field(j, "image_height", where), h);
            assert_int_equal(int_field(j, "image_depth", where), 3);
            assert_string_equal(str_field(j, "category", where), cats[c]);
            const char *pose = str_field(j, "pose", where);
            assert_true(!strcmp(pose, "Frontal") || !strcmp(pose, "Left") || !strcmp(pose, "Rear") ||
                        !strcmp(pose, "Right"));
            int t = int_field(j, "truncated", where), oc = int_field(j, "occluded", where);
            assert_true((t == 0 || t == 1) && (oc == 0 || oc == 1));
            assert_int_equal(int_field(j, "difficult", where), 0);
            int box[4];
            int_array(j, "bndbox", where, box, 4);
            assert_true(box[0] >= 0 && box[1] >= 0 && box[2] < w && box[3] < h && box[0] < box[2] && box[1] < box[3]);
            int az = int_field(j, "azimuth_id", where);
            assert_true(az >= 0 && az < 8);
            const cJSON *kps = field(j, "kps", where);
            assert_true(cJSON_IsObject(kps));
            int expect = !strcmp(cats[c], "bird") ? 15 : 12, n = 0, vis = 0;
            for (const cJSON *e = kps->child; e; e = e->next, n++) {
                char id[16];
                snprintf(id, sizeof id, "%d", n);
                assert_string_equal(e->string, id); /* ids "0".."N-1" in order */
                if (cJSON_IsNull(e))
                    continue;
                assert_true(cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2);
                int x = cJSON_GetArrayItem(e, 0)->valueint, y = cJSON_GetArrayItem(e, 1)->valueint;
                assert_true(x >= 0 && x < w && y >= 0 && y < h);
                vis++;
            }
            assert_int_equal(n, expect);
            assert_true(vis >= 2);
            cJSON_Delete(j);
        }
    /* pairs: every listed file has every field, consistent with the images */
    int seen_ids[256] = {0};
    char split_images[3][64][32];
    int n_split_images[3] = {0, 0, 0};
    for (int s = 0; s < 3; s++) {
        char **lines;
        snprintf(path, sizeof path, "%s/Layout/large/%s.txt", root, SPLITS[s]);
        int n = read_lines(path, &lines);
        assert_true(n >= 1);
        for (int i = 0; i < n; i++) {
            char where[4096];
            snprintf(where, sizeof where, "%s/PairAnnotation/%s/%s.json", root, SPLITS[s], lines[i]);
            cJSON *j = load_json(where);
            int id = int_field(j, "pair_id", where);
            assert_true(id >= 1 && id < 256 && !seen_ids[id]);
            seen_ids[id] = 1;
            assert_string_equal(str_field(j, "filename", where), lines[i]);
            const char *cat = str_field(j, "category", where);
            const char *src = str_field(j, "src_imname", where), *trg = str_field(j, "trg_imname", where);
            char stem[512];
            snprintf(stem, sizeof stem, "%06d-%.*s-%.*s:%s", id, (int)strlen(src) - 4, src, (int)strlen(trg) - 4,
                     trg, cat);
            assert_string_equal(stem, lines[i]);
            assert_string_not_equal(src, trg);
            str_field(j, "src_pose", where);
            str_field(j, "trg_pose", where);
            int ssz[3], tsz[3], sbox[4], tbox[4];
            int_array(j, "src_imsize", where, ssz, 3);
            int_array(j, "trg_imsize", where, tsz, 3);
            int_array(j, "src_bndbox", where, sbox, 4);
            int_array(j, "trg_bndbox", where, tbox, 4);
            assert_int_equal(ssz[2], 3);
            const cJSON *sk = field(j, "src_kps", where), *tk = field(j, "trg_kps", where),
                        *ids = field(j, "kps_ids", where);
            int nk = cJSON_GetArraySize(sk);
            assert_true(nk >= 1);
            assert_int_equal(cJSON_GetArraySize(tk), nk);
            assert_int_equal(cJSON_GetArraySize(ids), nk);
            /* both images' annotations agree with the pair */
            char ap[4096];
            snprintf(ap, sizeof ap, "%s/ImageAnnotation/%s/%.*s.json", root, cat, (int)strlen(src) - 4, src);
            cJSON *sa = load_json(ap);
            snprintf(ap, sizeof ap, "%s/ImageAnnotation/%s/%.*s.json", root, cat, (int)strlen(trg) - 4, trg);
            cJSON *ta = load_json(ap);
            assert_int_equal(ssz[0], int_field(sa, "image_width", ap));
            assert_int_equal(tsz[1], int_field(ta, "image_height", ap));
            int ib[4];
            int_array(sa, "bndbox", ap, ib, 4);
            assert_memory_equal(ib, sbox, sizeof ib);
            assert_string_equal(str_field(j, "src_pose", where), str_field(sa, "pose", ap));
            const cJSON *skps = field(sa, "kps", ap), *tkps = field(ta, "kps", ap);
            int common = 0;
            for (const cJSON *e = skps->child; e; e = e->next) {
                const cJSON *o = cJSON_GetObjectItemCaseSensitive(tkps, e->string);
                common += !cJSON_IsNull(e) && o && !cJSON_IsNull(o);
            }
            assert_int_equal(common, nk); /* exactly the keypoints visible in both */
            for (int k = 0; k < nk; k++) {
                const cJSON *idk = cJSON_GetArrayItem(ids, k);
                assert_true(cJSON_IsString(idk));
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(skps, idk->valuestring);
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(tkps, idk->valuestring);
                assert_true(cJSON_IsArray(a) && cJSON_IsArray(b));
                const cJSON *ps = cJSON_GetArrayItem(sk, k), *pt = cJSON_GetArrayItem(tk, k);
                assert_int_equal(cJSON_GetArrayItem(ps, 0)->valueint, cJSON_GetArrayItem(a, 0)->valueint);
                assert_int_equal(cJSON_GetArrayItem(ps, 1)->valueint, cJSON_GetArrayItem(a, 1)->valueint);
                assert_int_equal(cJSON_GetArrayItem(pt, 0)->valueint, cJSON_GetArrayItem(b, 0)->valueint);
                assert_int_equal(cJSON_GetArrayItem(pt, 1)->valueint, cJSON_GetArrayItem(b, 1)->valueint);
            }
            int vp = int_field(j, "viewpoint_variation", where), sv = int_field(j, "scale_variation", where);
            int tr = int_field(j, "truncation", where), oc = int_field(j, "occlusion", where);
            int mi = int_field(j, "mirror", where);
            assert_true(vp >= 0 && vp <= 2 && sv >= 0 && sv <= 2 && tr >= 0 && tr <= 3 && oc >= 0 && oc <= 3);
            assert_true(mi == 0 || mi == 1);
            assert_int_equal(tr, int_field(sa, "truncated", ap) + 2 * int_field(ta, "truncated", ap));
            assert_int_equal(oc, int_field(sa, "occluded", ap) + 2 * int_field(ta, "occluded", ap));
            /* record the split's images for the disjointness check */
            const char *names[2] = {src, trg};
            for (int q = 0; q < 2; q++) {
                int found = 0;
                for (int m = 0; m < n_split_images[s]; m++)
                    found |= !strcmp(split_images[s][m], names[q]);
                if (!found && n_split_images[s] < 64)
                    snprintf(split_images[s][n_split_images[s]++], 32, "%s", names[q]);
            }
            cJSON_Delete(sa);
            cJSON_Delete(ta);
            cJSON_Delete(j);
        }
        free_lines(lines, n);
    }
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            for (int i = 0; i < n_split_images[a]; i++)
                for (int k = 0; k < n_split_images[b]; k++)
                    if (!strcmp(split_images[a][i], split_images[b][k]))
                        fail_msg("image %s is in both %s and %s pairs", split_images[a][i], SPLITS[a], SPLITS[b]);
    /* the manifest names the keypoints */
    snprintf(path, sizeof path, "%s/dhf_synth.json", root);
    cJSON *m = load_json(path);
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "categories"), "car"), "keypoints");
    assert_true(cJSON_IsArray(names) && cJSON_GetArraySize(names) == 12);
    assert_string_equal(cJSON_GetArrayItem(names, 0)->valuestring, "front left wheel");
    assert_int_equal(int_field(m, "seed", path), 7);
    cJSON_Delete(m);
}

static void test_cub_layout(void **state)
{
    (void)state;
    char root[1024], path[4096];
    snprintf(root, sizeof root, "%s/CUB_200_2011", g_out);
    char **images, **labels, **split, **boxes, **parts, **locs, **classes;
    snprintf(path, sizeof path, "%s/images.txt", root);
    int ni = read_lines(path, &images);
    snprintf(path, sizeof path, "%s/image_class_labels.txt", root);
    int nl = read_lines(path, &labels);
    snprintf(path, sizeof path, "%s/train_test_split.txt", root);
    int ns = read_lines(path, &split);
    snprintf(path, sizeof path, "%s/bounding_boxes.txt", root);
    int nb = read_lines(path, &boxes);
    snprintf(path, sizeof path, "%s/parts/parts.txt", root);
    int np = read_lines(path, &parts);
    snprintf(path, sizeof path, "%s/parts/part_locs.txt", root);
    int nloc = read_lines(path, &locs);
    snprintf(path, sizeof path, "%s/classes.txt", root);
    int nc = read_lines(path, &classes);
    assert_int_equal(ni, 8);
    assert_int_equal(nl, 8);
    assert_int_equal(ns, 8);
    assert_int_equal(nb, 8);
    assert_int_equal(np, 15);
    assert_int_equal(nloc, 8 * 15);
    assert_int_equal(nc, 2);
    assert_string_equal(parts[0], "1 back");
    assert_string_equal(parts[6], "7 left eye");
    assert_string_equal(parts[14], "15 throat");
    assert_string_equal(classes[0], "1 001.Crimson_Finch");
    int train_per_class[2] = {0, 0};
    for (int i = 0; i < ni; i++) {
        int id, cls, tr;
        char rel[512];
        assert_int_equal(sscanf(images[i], "%d %511s", &id, rel), 2);
        assert_int_equal(id, i + 1);
        assert_int_equal(sscanf(labels[i], "%d %d", &id, &cls), 2);
        assert_int_equal(cls, i / 4 + 1);
        assert_non_null(strstr(rel, classes[cls - 1] + 2)); /* class folder */
        assert_int_equal(sscanf(split[i], "%d %d", &id, &tr), 2);
        assert_true(tr == 0 || tr == 1);
        train_per_class[cls - 1] += tr;
        snprintf(path, sizeof path, "%s/images/%s", root, rel);
        int w, h;
        if (dhf_image_size(path, &w, &h) != 0)
            fail_msg("%s", dhf_err_msg());
        double x, y, bw, bh;
        assert_int_equal(sscanf(boxes[i], "%d %lf %lf %lf %lf", &id, &x, &y, &bw, &bh), 5);
        assert_true(x >= 0 && y >= 0 && bw > 0 && bh > 0 && x + bw <= w - 1 && y + bh <= h - 1);
        int vis = 0;
        for (int k = 0; k < 15; k++) {
            int im, part, v;
            double px, py;
            assert_int_equal(sscanf(locs[i * 15 + k], "%d %d %lf %lf %d", &im, &part, &px, &py, &v), 5);
            assert_int_equal(im, i + 1);
            assert_int_equal(part, k + 1);
            if (v) {
                assert_true(px >= 0 && px <= w - 1 && py >= 0 && py <= h - 1);
                assert_true(px == floor(px) && py == floor(py));
                vis++;
            } else {
                assert_true(px == 0 && py == 0);
            }
        }
        assert_true(vis >= 2);
    }
    assert_int_equal(train_per_class[0], 2);
    assert_int_equal(train_per_class[1], 2);
    free_lines(images, ni);
    free_lines(labels, nl);
    free_lines(split, ns);
    free_lines(boxes, nb);
    free_lines(parts, np);
    free_lines(locs, nloc);
    free_lines(classes, nc);
}

static void test_read_back_with_dataset_readers(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s/SPair-71k", g_out);
    for (int s = 0; s < 3; s++) {
        dhf_dataset ds;
        if (dhf_spair_load(root, SPLITS[s], &ds) != 0)
            fail_msg("%s", dhf_err_msg());
        assert_true(ds.n_pairs >= 1);
        assert_int_equal(ds.n_categories, 2);
        if (dhf_dataset_resolve_images(&ds) != 0)
            fail_msg("%s", dhf_err_msg());
        for (size_t i = 0; i < ds.n_pairs; i++) {
            const dhf_pair *p = &ds.pairs[i];
            assert_true(p->n_kps >= 1);
            for (int k = 0; k < p->n_kps; k++) {
                assert_true(p->src_kps[2 * k] >= 0 && p->src_kps[2 * k] < p->src_size[0]);
                assert_true(p->trg_kps[2 * k + 1] >= 0 && p->trg_kps[2 * k + 1] < p->trg_size[1]);
                assert_true(p->kp_ids[k] >= 0 && p->kp_ids[k] < 15);
            }
            assert_true(p->viewpoint_variation >= 0 && p->truncation >= 0 && p->mirror >= 0);
        }
        dhf_dataset_free(&ds);
    }
    snprintf(root, sizeof root, "%s/CUB_200_2011", g_out);
    dhf_cub_options co = {"test", 0, 0, NULL};
    dhf_dataset cub;
    if (dhf_cub_load(root, &co, &cub) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_true(cub.n_pairs >= 1);
    assert_int_equal(cub.n_categories, 2);
    if (dhf_dataset_resolve_images(&cub) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_dataset_free(&cub);

    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    dhf_data_check_options opt = {.out = devnull, .err = devnull};
    if (dhf_data_check_dir(g_out, NULL, &opt) != 0)
        fail_msg("data check: %s", dhf_err_msg());
    fclose(devnull);
}

static void test_deterministic_across_threads_and_seed_sensitive(void **state)
{
    (void)state;
    char b[512], c[512];
    snprintf(b, sizeof b, "%s/b", g_base);
    snprintf(c, sizeof c, "%s/c", g_base);
    dhf_synth_options o;
    dhf_synth_summary sum;
    small_options(&o, 7, 1); /* same seed as the shared set, one thread instead of two */
    assert_int_equal(dhf_synth_run(b, &o, &sum), 0);
    int n_files, n_differ;
    assert_true(trees_identical(g_out, b, &n_files, &n_differ));
    assert_true(n_files > 50);
    small_options(&o, 8, 2);
    assert_int_equal(dhf_synth_run(c, &o, &sum), 0);
    trees_identical(g_out, c, &n_files, &n_differ);
    assert_true(n_differ > n_files / 2); /* a new seed changes (nearly) everything */
}

static void test_refuses_foreign_folder_and_replaces_own(void **state)
{
    (void)state;
    char d[512], p[1024];
    snprintf(d, sizeof d, "%s/foreign", g_base);
    snprintf(p, sizeof p, "%s/SPair-71k", d);
    assert_int_equal(dhf_mkdir_p(p), 0);
    snprintf(p, sizeof p, "%s/SPair-71k/precious.txt", d);
    assert_int_equal(dhf_write_file_atomic(p, "keep", 4), 0);
    dhf_synth_options o;
    dhf_synth_summary sum;
    small_options(&o, 7, 2);
    o.write_cub = false;
    assert_int_equal(dhf_synth_run(d, &o, &sum), -1);
    assert_non_null(strstr(dhf_err_msg(), "refusing"));
    assert_true(dhf_path_exists(p));

    /* our own earlier output is replaced without stale files: fewer images now */
    snprintf(d, sizeof d, "%s/own", g_base);
    assert_int_equal(dhf_synth_run(d, &o, &sum), 0);
    o.images_per_category = 6;
    o.seed = 3;
    assert_int_equal(dhf_synth_run(d, &o, &sum), 0);
    assert_int_equal(sum.spair_images, 12);
    snprintf(p, sizeof p, "%s/SPair-71k/JPEGImages/car/car_000007.jpg", d);
    assert_false(dhf_path_exists(p));
    snprintf(p, sizeof p, "%s/SPair-71k/ImageAnnotation/car/car_000007.json", d);
    assert_false(dhf_path_exists(p));
}

static void test_validation_messages(void **state)
{
    (void)state;
    dhf_synth_options o;
    small_options(&o, 1, 1);
    o.images_per_category = 5;
    assert_int_equal(dhf_synth_validate(&o), -1);
    assert_non_null(strstr(dhf_err_msg(), "--images-per-category"));
    small_options(&o, 1, 1);
    o.categories[1] = "aeroplane";
    assert_int_equal(dhf_synth_validate(&o), -1);
    assert_non_null(strstr(dhf_err_msg(), "aeroplane"));
    small_options(&o, 1, 1);
    o.scene.min_size = 200;
    o.scene.max_size = 100;
    assert_int_equal(dhf_synth_validate(&o), -1);
    assert_non_null(strstr(dhf_err_msg(), "--min-size"));
    small_options(&o, 1, 1);
    o.write_spair = o.write_cub = false;
    assert_int_equal(dhf_synth_validate(&o), -1);
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_shape_contains),
        cmocka_unit_test(test_view_affine_and_roundtrip),
        cmocka_unit_test(test_render_disc_coverage),
        cmocka_unit_test(test_templates_have_named_keypoints),
        cmocka_unit_test(test_visible_keypoints_on_silhouette),
        cmocka_unit_test(test_validation_messages),
    };
    const struct CMUnitTest generated[] = {
        cmocka_unit_test(test_spair_layout_and_fields),
        cmocka_unit_test(test_cub_layout),
        cmocka_unit_test(test_read_back_with_dataset_readers),
        cmocka_unit_test(test_deterministic_across_threads_and_seed_sensitive),
        cmocka_unit_test(test_refuses_foreign_folder_and_replaces_own),
    };
    setenv("DHF_PROGRESS", "0", 1);
    int failed = cmocka_run_group_tests_name("synth: rasteriser and templates", unit, NULL, NULL);
    failed += cmocka_run_group_tests_name("synth: generated set", generated, setup_set, teardown_set);
    return failed ? 1 : 0;
}
