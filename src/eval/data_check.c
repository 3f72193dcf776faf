/* data_check.c — `dhf data check`: walks a SPair-71k or CUB-200-2011 folder,
 * collects every structural problem (unparsable annotations, missing or
 * undecodable images, sizes that disagree with annotations, boxes outside
 * images, split lists naming missing files), prints count tables, and with
 * strict_official compares against the published numbers. */
#include "eval/data_check.h"
#include "eval/cub_tables.h"
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "eval/dataset_json.h"
#include "core/error.h"
#include "core/str.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/progress.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PRINTED_PROBLEMS 50

typedef struct {
    FILE *out, *err;
    long n_problems;
} checker;

static void problem(checker *c, const char *fmt, ...) DHF_PRINTF(2, 3);
static void problem(checker *c, const char *fmt, ...)
{
    c->n_problems++;
    if (c->n_problems > MAX_PRINTED_PROBLEMS)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(c->err, "problem: ");
    vfprintf(c->err, fmt, ap);
    fprintf(c->err, "\n");
    va_end(ap);
}

static int finish(checker *c, const char *root, const char *what)
{
    if (c->n_problems > MAX_PRINTED_PROBLEMS)
        fprintf(c->err, "problem: ... and %ld more\n", c->n_problems - MAX_PRINTED_PROBLEMS);
    if (c->n_problems) {
        fprintf(c->out, "%s at %s: FAILED (%ld problem%s)\n", what, root, c->n_problems,
                c->n_problems == 1 ? "" : "s");
        return dhf_err_set("%s: %ld problem%s found (listed above)", root, c->n_problems,
                           c->n_problems == 1 ? "" : "s");
    }
    fprintf(c->out, "%s at %s: OK\n", what, root);
    return 0;
}

static void checker_init(checker *c, const dhf_data_check_options *opt)
{
    c->out = opt && opt->out ? opt->out : stdout;
    c->err = opt && opt->err ? opt->err : stderr;
    c->n_problems = 0;
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
                   !strcasecmp(dot, ".png"));
}

/* Sorted names of regular files in dir whose name passes keep(). */
static int list_files(const char *dir, int (*keep)(const char *), char ***names, size_t *n)
{
    int count = 0;
    if (dhf_ds_list_dir(dir, false, keep, names, &count) != 0)
        return -1;
    *n = (size_t)count;
    return 0;
}

static int is_json(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

/* ---- SPair-71k ----------------------------------------------------------------- */

typedef struct {
    char *key;   /* "category/name.jpg" */
    int w, h;    /* 0 when the file does not decode */
} image_entry;

static int cmp_image_entry(const void *a, const void *b)
{
    return strcmp(((const image_entry *)a)->key, ((const image_entry *)b)->key);
}

static const image_entry *find_image(const image_entry *v, size_t n, const char *key)
{
    image_entry probe = {(char *)key, 0, 0};
    return bsearch(&probe, v, n, sizeof *v, cmp_image_entry);
}

static const char *const spair_splits[3] = {"trn", "val", "test"};
static const long spair_official_totals[3] = {DHF_SPAIR_TRN_PAIRS, DHF_SPAIR_VAL_PAIRS,
                                              DHF_SPAIR_TEST_PAIRS};

/* Image annotation: must parse as an object; declared sizes must match. */
static void check_image_annotation(checker *c, const char *root, const char *cat,
                                   const char *name, const image_entry *img)
{
    char stem[1024], path[4096];
    snprintf(stem, sizeof stem, "%s", name);
    char *dot = strrchr(stem, '.');
    if (dot)
        *dot = '\0';
    snprintf(path, sizeof path, "%s/ImageAnnotation/%s/%s.json", root, cat, stem);
    if (!dhf_path_exists(path)) {
        problem(c, "%s: missing annotation for image JPEGImages/%s/%s", path, cat, name);
        return;
    }
    cJSON *j;
    if (dhf_dj_parse_file(path, &j) != 0) {
        problem(c, "%s", dhf_err_msg());
        return;
    }
    if (!cJSON_IsObject(j)) {
        problem(c, "%s: expected a JSON object, got %s", path, dhf_dj_type_name(j));
    } else if (img->w > 0) {
        int w = -1, h = -1;
        if (dhf_dj_opt_int(j, path, "image_width", &w) || dhf_dj_opt_int(j, path, "image_height", &h))
            problem(c, "%s", dhf_err_msg());
        else if ((w >= 0 && w != img->w) || (h >= 0 && h != img->h))
            problem(c, "%s: image_width x image_height is %dx%d but JPEGImages/%s/%s is %dx%d", path,
                    w, h, cat, name, img->w, img->h);
    }
    cJSON_Delete(j);
}

static int scan_spair_images(checker *c, const char *root, char **cats, int n_cats,
                             image_entry **images, size_t *n_images, long *per_cat)
{
    size_t cap = 0;
    char dir[4096], path[4096];
    int have_ann;
    snprintf(dir, sizeof dir, "%s/ImageAnnotation", root);
    have_ann = dhf_is_dir(dir);
    if (!have_ann)
        problem(c, "%s: missing (SPair-71k keeps one JSON per image there)", dir);
    *images = NULL;
    *n_images = 0;
    for (int k = 0; k < n_cats; k++) {
        char **names;
        size_t n;
        snprintf(dir, sizeof dir, "%s/JPEGImages/%s", root, cats[k]);
        if (list_files(dir, has_image_ext, &names, &n) != 0)
            return -1;
        per_cat[k] = (long)n;
        if (n == 0)
            problem(c, "%s: no images", dir);
        for (size_t i = 0; i < n; i++) {
            if (*n_images == cap) {
                cap = cap ? cap * 2 : 2048;
                image_entry *nv = realloc(*images, cap * sizeof *nv);
                if (!nv) {
                    dhf_ds_free_strings(names, (int)n);
                    return dhf_err_set("out of memory scanning %s", dir);
                }
                *images = nv;
            }
            image_entry *e = &(*images)[*n_images];
            char key[2048];
            snprintf(key, sizeof key, "%s/%s", cats[k], names[i]);
            e->key = dhf_strdup(key);
            e->w = e->h = 0;
            if (!e->key) {
                dhf_ds_free_strings(names, (int)n);
                return dhf_err_set("out of memory");
            }
            (*n_images)++;
            if (dhf_path_join(path, sizeof path, dir, names[i]) != 0 ||
                dhf_image_size(path, &e->w, &e->h) != 0) {
                problem(c, "%s", dhf_err_msg());
                e->w = e->h = 0;
            }
            if (have_ann)
                check_image_annotation(c, root, cats[k], names[i], e);
        }
        dhf_ds_free_strings(names, (int)n);
    }
    if (*n_images > 1)
        qsort(*images, *n_images, sizeof **images, cmp_image_entry);
    return 0;
}

static void check_pair_images(checker *c, const dhf_pair *p, const image_entry *images,
                              size_t n_images)
{
    for (int side = 0; side < 2; side++) {
        const char *key = side ? p->trg_key : p->src_key;
        const char *path = side ? p->trg_path : p->src_path;
        const int *size = side ? p->trg_size : p->src_size;
        const image_entry *e = find_image(images, n_images, key);
        if (!e)
            problem(c, "pair %s: %s image %s does not exist", p->id, side ? "target" : "source",
                    path);
        else if (e->w > 0 && (e->w != size[0] || e->h != size[1]))
            problem(c, "pair %s: %s_imsize is %dx%d but %s is %dx%d", p->id, side ? "trg" : "src",
                    size[0], size[1], path, e->w, e->h);
    }
}

/* Reads one split's pairs; counts[k] gets pairs per category. */
static int check_spair_split(checker *c, const char *root, int s, char **cats, int n_cats,
                             const image_entry *images, size_t n_images, long *counts,
                             long *listed)
{
    const char *split = spair_splits[s];
    char path[4096];
    snprintf(path, sizeof path, "%s/Layout/large/%s.txt", root, split);
    *listed = 0;
    if (!dhf_path_exists(path)) {
        problem(c, "%s: missing split list", path);
        return 0;
    }
    char **stems;
    size_t n;
    if (dhf_ds_read_lines(path, &stems, &n) != 0) {
        problem(c, "%s", dhf_err_msg());
        return 0;
    }
    *listed = (long)n;
    if (n == 0)
        problem(c, "%s: lists no pairs", path);
    char **sorted = n ? malloc(sizeof(char *) * n) : NULL;
    if (n && !sorted) {
        dhf_ds_free_strings(stems, (int)n);
        return dhf_err_set("out of memory");
    }
    if (n) {
        memcpy(sorted, stems, sizeof(char *) * n);
        qsort(sorted, n, sizeof(char *), dhf_ds_cmp_str);
        for (size_t i = 1; i < n; i++)
            if (strcmp(sorted[i], sorted[i - 1]) == 0)
                problem(c, "%s: pair '%s' listed twice", path, sorted[i]);
    }
    free(sorted);

    dhf_progress prog;
    char label[64];
    snprintf(label, sizeof label, "checking SPair %s pairs", split);
    dhf_progress_begin(&prog, label, (int64_t)n);
    dhf_progress_set_unit(&prog, "pair");
    for (size_t i = 0; i < n; i++) {
        dhf_progress_step(&prog, 1, NULL);
        char json[4096];
        if ((size_t)snprintf(json, sizeof json, "%s/PairAnnotation/%s/%s.json", root, split,
                             stems[i]) >= sizeof json) {
            problem(c, "%s: line %zu: pair name too long", path, i + 1);
            continue;
        }
        if (strchr(stems[i], '/')) {
            problem(c, "%s: line %zu ('%s') is not a pair file stem", path, i + 1, stems[i]);
            continue;
        }
        if (!dhf_path_exists(json)) {
            problem(c, "%s: missing (listed in Layout/large/%s.txt line %zu)", json, split, i + 1);
            continue;
        }
        dhf_pair p;
        if (dhf_spair_read_pair(json, root, cats, n_cats, &p) != 0) {
            problem(c, "%s", dhf_err_msg());
            continue;
        }
        int k = dhf_ds_category_known(cats, n_cats, p.category);
        if (k >= 0)
            counts[k]++;
        check_pair_images(c, &p, images, n_images);
        dhf_pair_free(&p);
    }
    dhf_progress_end(&prog);
    dhf_ds_free_strings(stems, (int)n);

    /* Files outside the list are legal (Layout/small uses a subset) but worth a note. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/PairAnnotation/%s", root, split);
    char **files;
    size_t n_files;
    if (!dhf_is_dir(dir)) {
        if (n)
            problem(c, "%s: missing", dir);
    } else if (list_files(dir, is_json, &files, &n_files) == 0) {
        if (n_files != n)
            fprintf(c->out, "note: %s holds %zu pair files, Layout/large/%s.txt lists %zu\n", dir,
                    n_files, split, n);
        dhf_ds_free_strings(files, (int)n_files);
    }
    return 0;
}

static void strict_spair(checker *c, char **cats, int n_cats, long n_images,
                         long counts[3][DHF_SPAIR_NUM_CATEGORIES + 64], const long *totals)
{
    int same = n_cats == DHF_SPAIR_NUM_CATEGORIES;
    for (int k = 0; same && k < n_cats; k++)
        same = strcmp(cats[k], dhf_spair_categories[k]) == 0;
    if (!same)
        problem(c, "official SPair-71k has the %d categories aeroplane ... tvmonitor; found %d "
                   "different folders in JPEGImages/",
                DHF_SPAIR_NUM_CATEGORIES, n_cats);
    if (n_images != DHF_SPAIR_NUM_IMAGES)
        problem(c, "official SPair-71k has %d images, found %ld", DHF_SPAIR_NUM_IMAGES, n_images);
    for (int s = 0; s < 3; s++)
        if (totals[s] != spair_official_totals[s])
            problem(c, "official SPair-71k %s split has %ld pairs, found %ld", spair_splits[s],
                    spair_official_totals[s], totals[s]);
    if (!same)
        return;
    for (int k = 0; k < n_cats; k++)
        if (counts[2][k] != dhf_spair_test_counts[k])
            problem(c, "official SPair-71k test split has %d %s pairs, found %ld",
                    dhf_spair_test_counts[k], cats[k], counts[2][k]);
}

int dhf_data_check_spair(const char *root, const dhf_data_check_options *opt)
{
    checker c;
    checker_init(&c, opt);
    char dir[4096];
    if (dhf_path_join(dir, sizeof dir, root, "JPEGImages") != 0)
        return -1;
    if (!dhf_is_dir(dir))
        return dhf_err_set("%s: not a SPair-71k folder (no JPEGImages/ inside)", root);
    char **cats;
    int n_cats;
    if (dhf_ds_list_subdirs(dir, &cats, &n_cats) != 0)
        return -1;
    if (n_cats == 0)
        problem(&c, "%s: no category folders", dir);
    if (n_cats > DHF_SPAIR_NUM_CATEGORIES + 64) {
        dhf_ds_free_strings(cats, n_cats);
        return dhf_err_set("%s: %d category folders; not a SPair-71k layout", dir, n_cats);
    }
    long per_cat_images[DHF_SPAIR_NUM_CATEGORIES + 64] = {0};
    long counts[3][DHF_SPAIR_NUM_CATEGORIES + 64];
    memset(counts, 0, sizeof counts);
    long listed[3] = {0, 0, 0}, totals[3] = {0, 0, 0};
    image_entry *images = NULL;
    size_t n_images = 0;
    int rc = scan_spair_images(&c, root, cats, n_cats, &images, &n_images, per_cat_images);
    for (int s = 0; s < 3 && rc == 0; s++)
        rc = check_spair_split(&c, root, s, cats, n_cats, images, n_images, counts[s], &listed[s]);
    if (rc == 0) {
        fprintf(c.out, "SPair-71k layout at %s\n", root);
        fprintf(c.out, "%-16s %7s %7s %7s %7s\n", "category", "images", "trn", "val", "test");
        long n_img_total = 0;
        for (int k = 0; k < n_cats; k++) {
            fprintf(c.out, "%-16s %7ld %7ld %7ld %7ld\n", cats[k], per_cat_images[k], counts[0][k],
                    counts[1][k], counts[2][k]);
            n_img_total += per_cat_images[k];
            for (int s = 0; s < 3; s++)
                totals[s] += counts[s][k];
        }
        fprintf(c.out, "%-16s %7ld %7ld %7ld %7ld\n", "total", n_img_total, totals[0], totals[1],
                totals[2]);
        for (int s = 0; s < 3; s++)
            if (listed[s] != totals[s])
                fprintf(c.out, "note: Layout/large/%s.txt lists %ld pairs, %ld read cleanly\n",
                        spair_splits[s], listed[s], totals[s]);
        if (opt && opt->strict_official)
            strict_spair(&c, cats, n_cats, n_img_total, counts, listed);
    }
    for (size_t i = 0; i < n_images; i++)
        free(images[i].key);
    free(images);
    dhf_ds_free_strings(cats, n_cats);
    if (rc != 0)
        return -1;
    return finish(&c, root, opt && opt->strict_official ? "SPair-71k (strict official)" : "SPair-71k");
}

/* ---- CUB-200-2011 ---------------------------------------------------------------- */

int dhf_data_check_cub(const char *root, const dhf_data_check_options *opt)
{
    checker c;
    checker_init(&c, opt);
    dhf_cub_tables t;
    if (dhf_cub_read_tables(root, &t) != 0) {
        problem(&c, "%s", dhf_err_msg());
        return finish(&c, root, "CUB-200-2011");
    }
    long *train = calloc((size_t)t.n_classes, sizeof(long));
    long *test = calloc((size_t)t.n_classes, sizeof(long));
    long *cand = calloc((size_t)t.n_classes, sizeof(long));
    if (!train || !test || !cand) {
        free(train);
        free(test);
        free(cand);
        dhf_cub_tables_free(&t);
        return dhf_err_set("out of memory");
    }
    dhf_progress prog;
    dhf_progress_begin(&prog, "checking CUB images", (int64_t)t.n_images);
    dhf_progress_set_unit(&prog, "img");
    long n_train = 0, n_test = 0;
    for (size_t i = 0; i < t.n_images; i++) {
        dhf_progress_step(&prog, 1, NULL);
        const dhf_cub_image *im = &t.images[i];
        (im->is_train ? train : test)[im->cls]++;
        *(im->is_train ? &n_train : &n_test) += 1;
        char path[4096], where[4200];
        snprintf(path, sizeof path, "%s/images/%s", root, im->rel);
        int size[2];
        if (dhf_image_size(path, &size[0], &size[1]) != 0) {
            problem(&c, "image %d: %s", im->id, dhf_err_msg());
            continue;
        }
        snprintf(where, sizeof where, "%s/bounding_boxes.txt: image %d (%s)", root, im->id, im->rel);
        if (dhf_ds_check_box(where, "box", im->bbox, size) != 0)
            problem(&c, "%s", dhf_err_msg());
    }
    dhf_progress_end(&prog);
    if (t.n_part_locs != t.n_images * (size_t)t.n_parts)
        problem(&c, "%s/parts/part_locs.txt: %zu rows, expected one per image and part (%zu x %d = "
                    "%zu)",
                root, t.n_part_locs, t.n_images, t.n_parts, t.n_images * (size_t)t.n_parts);

    /* Candidate test pairs: same class, distinct, >= 1 part visible in both. */
    long n_cand = 0;
    for (size_t a = 0; a < t.n_images; a++) {
        if (t.images[a].is_train)
            continue;
        for (size_t b = 0; b < t.n_images; b++) {
            if (a == b || t.images[b].is_train || t.images[b].cls != t.images[a].cls)
                continue;
            for (int k = 0; k < t.n_parts; k++)
                if (t.images[a].visible[k] && t.images[b].visible[k]) {
                    cand[t.images[a].cls]++;
                    n_cand++;
                    break;
                }
        }
    }

    fprintf(c.out, "CUB-200-2011 layout at %s\n", root);
    fprintf(c.out, "images %zu (train %ld, test %ld), classes %d, parts %d, part locations %zu\n",
            t.n_images, n_train, n_test, t.n_classes, t.n_parts, t.n_part_locs);
    int rows = t.n_classes <= 40 || (opt && opt->full_table);
    fprintf(c.out, "%-36s %7s %7s %11s\n", "class", "train", "test", "test pairs");
    for (int k = 0; k < t.n_classes; k++) {
        if (rows)
            fprintf(c.out, "%-36s %7ld %7ld %11ld\n", t.classes[k], train[k], test[k], cand[k]);
        if (test[k] < 2)
            fprintf(c.out, "note: class %s has %ld test image%s, no test pairs\n", t.classes[k],
                    test[k], test[k] == 1 ? "" : "s");
    }
    if (!rows)
        fprintf(c.out, "(%d class rows hidden; --full-table lists them)\n", t.n_classes);
    fprintf(c.out, "%-36s %7ld %7ld %11ld\n", "total", n_train, n_test, n_cand);
    if (opt && opt->strict_official) {
        if (t.n_images != DHF_CUB_NUM_IMAGES)
            problem(&c, "official CUB-200-2011 has %d images, found %zu", DHF_CUB_NUM_IMAGES,
                    t.n_images);
        if (t.n_classes != DHF_CUB_NUM_CLASSES)
            problem(&c, "official CUB-200-2011 has %d classes, found %d", DHF_CUB_NUM_CLASSES,
                    t.n_classes);
        if (t.n_parts != DHF_CUB_NUM_PARTS)
            problem(&c, "official CUB-200-2011 has %d parts, found %d", DHF_CUB_NUM_PARTS,
                    t.n_parts);
        if (n_train != DHF_CUB_NUM_TRAIN || n_test != DHF_CUB_NUM_TEST)
            problem(&c, "official CUB-200-2011 splits are %d train / %d test, found %ld / %ld",
                    DHF_CUB_NUM_TRAIN, DHF_CUB_NUM_TEST, n_train, n_test);
    }
    free(train);
    free(test);
    free(cand);
    dhf_cub_tables_free(&t);
    return finish(&c, root,
                  opt && opt->strict_official ? "CUB-200-2011 (strict official)" : "CUB-200-2011");
}

/* ---- detection ---------------------------------------------------------------------- */

static int looks_spair(const char *dir)
{
    char p[4096];
    return dhf_path_join(p, sizeof p, dir, "JPEGImages") == 0 && dhf_is_dir(p);
}

static int looks_cub(const char *dir)
{
    char p[4096];
    return dhf_path_join(p, sizeof p, dir, "images.txt") == 0 && dhf_path_exists(p);
}

int dhf_data_check_dir(const char *dir, const char *kind, const dhf_data_check_options *opt)
{
    int want_spair = !kind || !strcmp(kind, "auto") || !strcmp(kind, "spair");
    int want_cub = !kind || !strcmp(kind, "auto") || !strcmp(kind, "cub");
    if (!want_spair && !want_cub)
        return dhf_err_set("dataset kind '%s': expected spair, cub or auto", kind);
    if (!dhf_is_dir(dir))
        return dhf_err_set("%s: not a directory", dir);
    if (want_spair && looks_spair(dir))
        return dhf_data_check_spair(dir, opt);
    if (want_cub && looks_cub(dir))
        return dhf_data_check_cub(dir, opt);

    char **subs;
    int n_subs;
    if (dhf_ds_list_subdirs(dir, &subs, &n_subs) != 0)
        return -1;
    int found = 0, failed = 0;
    char first_err[1024] = "";
    for (int i = 0; i < n_subs; i++) {
        char p[4096];
        if (dhf_path_join(p, sizeof p, dir, subs[i]) != 0)
            continue;
        int rc;
        if (want_spair && looks_spair(p))
            rc = dhf_data_check_spair(p, opt);
        else if (want_cub && looks_cub(p))
            rc = dhf_data_check_cub(p, opt);
        else
            continue;
        found++;
        if (rc != 0) {
            failed++;
            if (!first_err[0])
                snprintf(first_err, sizeof first_err, "%s", dhf_err_msg());
        }
    }
    dhf_ds_free_strings(subs, n_subs);
    if (!found)
        return dhf_err_set("%s: no %s layout found (looked for %s in it and in its sub-folders)",
                           dir,
                           want_spair && want_cub ? "SPair-71k or CUB-200-2011"
                           : want_spair           ? "SPair-71k"
                                                  : "CUB-200-2011",
                           want_spair && want_cub ? "JPEGImages/ and images.txt"
                           : want_spair           ? "JPEGImages/"
                                                  : "images.txt");
    if (failed)
        return dhf_err_set("%d of %d datasets under %s failed; first: %s", failed, found, dir,
                           first_err);
    return 0;
}
