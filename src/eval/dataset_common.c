/* dataset_common.c — what every dataset reader shares (dataset_common.h): the
 * SPair-71k fact tables, freeing, the pair array and category plumbing, and the image
 * resolution pass (existence, decodable header, sizes, boxes inside images). The
 * readers (spair.c, cub.c, pairlist.c, subset.c) call it; dataset.c calls the readers. */
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/str.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const dhf_spair_categories[DHF_SPAIR_NUM_CATEGORIES] = {
    "aeroplane", "bicycle", "bird",      "boat",  "bottle", "bus",
    "car",       "cat",     "chair",     "cow",   "dog",    "horse",
    "motorbike", "person",  "pottedplant", "sheep", "train",  "tvmonitor",
};

const int dhf_spair_test_counts[DHF_SPAIR_NUM_CATEGORIES] = {
    690, 650, 702, 702, 870, 644, 564, 600, 646, 640, 600, 600, 702, 650, 862, 664, 756, 692,
};

int dhf_spair_category_index(const char *name)
{
    for (int i = 0; i < DHF_SPAIR_NUM_CATEGORIES; i++)
        if (strcmp(name, dhf_spair_categories[i]) == 0)
            return i;
    return -1;
}

/* ---- ownership -------------------------------------------------------------- */

void dhf_pair_free(dhf_pair *p)
{
    if (!p)
        return;
    free(p->id);
    free(p->category);
    free(p->src_key);
    free(p->trg_key);
    free(p->src_path);
    free(p->trg_path);
    free(p->src_kps);
    free(p->trg_kps);
    free(p->visible);
    free(p->kp_ids);
    memset(p, 0, sizeof *p);
}

void dhf_ds_free_strings(char **v, int n)
{
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int dhf_ds_category_known(char *const *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return i;
    return -1;
}

void dhf_dataset_free(dhf_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->n_pairs; i++)
        dhf_pair_free(&ds->pairs[i]);
    free(ds->pairs);
    dhf_ds_free_strings(ds->categories, ds->n_categories);
    memset(ds, 0, sizeof *ds);
}

int dhf_dataset_category_index(const dhf_dataset *ds, const char *name)
{
    return dhf_ds_category_known(ds->categories, ds->n_categories, name);
}

/* ---- shared plumbing ----------------------------------------------------------- */

int dhf_ds_copy(char *dst, size_t cap, const char *src, const char *what)
{
    size_t n = strlen(src);
    if (n >= cap)
        return dhf_err_set("%s too long (%zu characters, at most %zu): %s", what, n, cap - 1,
                           src);
    memcpy(dst, src, n + 1);
    return 0;
}

int dhf_ds_append(dhf_dataset *ds, size_t *cap, dhf_pair *p)
{
    if (ds->n_pairs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        dhf_pair *np = realloc(ds->pairs, ncap * sizeof *np);
        if (!np)
            return dhf_err_set("out of memory growing the pair list to %zu pairs", ncap);
        ds->pairs = np;
        *cap = ncap;
    }
    ds->pairs[ds->n_pairs++] = *p;
    memset(p, 0, sizeof *p);
    return 0;
}

int dhf_ds_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dhf_ds_list_subdirs(const char *dir, char ***names, int *n)
{
    return dhf_ds_list_dir(dir, true, NULL, names, n);
}

int dhf_ds_list_dir(const char *dir, bool want_dirs, int (*keep)(const char *), char ***names,
                    int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return dhf_err_set("%s: cannot open directory", dir);
    char **v = NULL;
    int count = 0, cap = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || (keep && !keep(e->d_name)))
            continue;
        if (dhf_path_join(path, sizeof path, dir, e->d_name) != 0 ||
            dhf_is_dir(path) != want_dirs)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, sizeof(char *) * (size_t)cap);
            if (!nv)
                goto oom;
            v = nv;
        }
        if (!(v[count] = dhf_strdup(e->d_name)))
            goto oom;
        count++;
    }
    closedir(d);
    if (count)
        qsort(v, (size_t)count, sizeof(char *), dhf_ds_cmp_str);
    *names = v;
    *n = count;
    return 0;
oom:
    closedir(d);
    dhf_ds_free_strings(v, count);
    return dhf_err_set("%s: out of memory listing directories", dir);
}

int dhf_ds_set_categories(dhf_dataset *ds, char *const *names, int n)
{
    dhf_ds_free_strings(ds->categories, ds->n_categories);
    ds->categories = NULL;
    ds->n_categories = 0;
    if (n == 0)
        return 0;
    char **v = calloc((size_t)n, sizeof(char *));
    if (!v)
        return dhf_err_set("out of memory copying categories");
    for (int i = 0; i < n; i++)
        if (!(v[i] = dhf_strdup(names[i]))) {
            dhf_ds_free_strings(v, i);
            return dhf_err_set("out of memory copying categories");
        }
    qsort(v, (size_t)n, sizeof(char *), dhf_ds_cmp_str);
    ds->categories = v;
    ds->n_categories = n;
    return 0;
}

int dhf_ds_check_box(const char *where, const char *field, const double box[4],
                     const int size[2])
{
    if (box[0] < -DHF_BOX_SLACK || box[1] < -DHF_BOX_SLACK || box[2] > size[0] + DHF_BOX_SLACK ||
        box[3] > size[1] + DHF_BOX_SLACK)
        return dhf_err_set("%s: field '%s': box [%g, %g, %g, %g] lies outside the %dx%d image",
                           where, field, box[0], box[1], box[2], box[3], size[0], size[1]);
    return 0;
}

int dhf_ds_check_points(const char *where, const char *field, const double *pts, int n,
                        const int size[2])
{
    for (int i = 0; i < n; i++) {
        double x = pts[2 * i], y = pts[2 * i + 1];
        if (!(x >= -DHF_BOX_SLACK && y >= -DHF_BOX_SLACK && x <= size[0] + DHF_BOX_SLACK &&
              y <= size[1] + DHF_BOX_SLACK))
            return dhf_err_set("%s: field '%s': keypoint %d (%g, %g) lies outside the %dx%d image",
                               where, field, i, x, y, size[0], size[1]);
    }
    return 0;
}

int dhf_ds_alloc_kps(dhf_pair *p, int n)
{
    p->n_kps = n;
    size_t m = n > 0 ? (size_t)n : 1;
    p->src_kps = calloc(2 * m, sizeof(double));
    p->trg_kps = calloc(2 * m, sizeof(double));
    p->visible = malloc(m);
    p->kp_ids = calloc(m, sizeof(int));
    if (!p->src_kps || !p->trg_kps || !p->visible || !p->kp_ids)
        return dhf_err_set("out of memory allocating %d keypoints", n);
    memset(p->visible, 1, m);
    return 0;
}

int dhf_ds_read_lines(const char *path, char ***lines, size_t *n)
{
    *lines = NULL;
    *n = 0;
    char *text;
    if (dhf_read_file(path, &text, NULL) != 0)
        return -1;
    size_t cap = 0, count = 0;
    char **v = NULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nv = realloc(v, sizeof(char *) * cap);
            if (!nv)
                goto oom;
            v = nv;
        }
        if (!(v[count] = dhf_strdup(line)))
            goto oom;
        count++;
    }
    free(text);
    *lines = v;
    *n = count;
    return 0;
oom:
    dhf_ds_free_strings(v, (int)count);
    free(text);
    return dhf_err_set("%s: out of memory", path);
}

static int cmp_pair_id(const void *a, const void *b)
{
    return strcmp(((const dhf_pair *)a)->id, ((const dhf_pair *)b)->id);
}

void dhf_ds_sort_by_id(dhf_dataset *ds)
{
    if (ds->n_pairs > 1)
        qsort(ds->pairs, ds->n_pairs, sizeof(dhf_pair), cmp_pair_id);
}

/* ---- images ---------------------------------------------------------------------- */

typedef struct {
    const char *path;
    size_t pair;
    int is_trg;
} image_ref;

static int cmp_ref(const void *a, const void *b)
{
    const image_ref *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c)
        return c;
    if (x->pair != y->pair)
        return x->pair < y->pair ? -1 : 1;
    return x->is_trg - y->is_trg;
}

int dhf_dataset_resolve_images(dhf_dataset *ds)
{
    if (ds->n_pairs == 0)
        return 0;
    image_ref *refs = malloc(sizeof(image_ref) * ds->n_pairs * 2);
    if (!refs)
        return dhf_err_set("out of memory resolving %zu pairs' images", ds->n_pairs);
    for (size_t i = 0; i < ds->n_pairs; i++) {
        refs[2 * i] = (image_ref){ds->pairs[i].src_path, i, 0};
        refs[2 * i + 1] = (image_ref){ds->pairs[i].trg_path, i, 1};
    }
    size_t n = ds->n_pairs * 2;
    qsort(refs, n, sizeof *refs, cmp_ref);

    /* Every image is read once; the first pair that uses it names it in errors. */
    int rc = 0;
    for (size_t a = 0; a < n && rc == 0;) {
        size_t b = a;
        while (b < n && strcmp(refs[b].path, refs[a].path) == 0)
            b++;
        int w = 0, h = 0;
        const dhf_pair *first = &ds->pairs[refs[a].pair];
        if (dhf_image_size(refs[a].path, &w, &h) != 0) {
            rc = dhf_err_wrap("pair %s: %s image", first->id, refs[a].is_trg ? "target" : "source");
            break;
        }
        for (size_t k = a; k < b; k++) {
            dhf_pair *p = &ds->pairs[refs[k].pair];
            int *size = refs[k].is_trg ? p->trg_size : p->src_size;
            const char *side = refs[k].is_trg ? "trg" : "src";
            if (size[0] > 0 && (size[0] != w || size[1] != h)) {
                rc = dhf_err_set("pair %s: %s_imsize is %dx%d but %s is %dx%d", p->id, side,
                                 size[0], size[1], refs[k].path, w, h);
                break;
            }
            size[0] = w;
            size[1] = h;
            const double *box = refs[k].is_trg ? p->trg_bbox : p->src_bbox;
            char where[512], field[32];
            snprintf(where, sizeof where, "pair %s", p->id);
            snprintf(field, sizeof field, "%s bounding box", refs[k].is_trg ? "target" : "source");
            if (dhf_ds_check_box(where, field, box, size) != 0) {
                rc = -1;
                break;
            }
        }
        a = b;
    }
    free(refs);
    return rc;
}

/* ---- the single entry point ------------------------------------------------------ */

