/* cub_tables.c — parsing and cross-checking the CUB-200-2011 annotation text
 * files into per-image records (shared by the pair reader and data check). */
#include "eval/cub_tables.h"
#include "eval/dataset_common.h"
#include "core/error.h"
#include "core/str.h"
#include "core/fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids index an array; the official ones stop at 11,788. */
#define CUB_MAX_ID 10000000

typedef struct {
    char *text;
    char *next;
    int line;
    char path[4096];
} line_reader;

static int lr_open(line_reader *r, const char *root, const char *rel)
{
    memset(r, 0, sizeof *r);
    if (dhf_path_join(r->path, sizeof r->path, root, rel) != 0)
        return -1;
    if (!dhf_path_exists(r->path))
        return dhf_err_set("%s: missing (a CUB-200-2011 folder needs images.txt, "
                           "image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, "
                           "parts/parts.txt, parts/part_locs.txt)",
                           r->path);
    if (dhf_read_file(r->path, &r->text, NULL) != 0)
        return -1;
    r->next = r->text;
    return 0;
}

/* Next non-blank line (trailing whitespace and CR removed), or NULL at end. */
static char *lr_next(line_reader *r)
{
    while (r->next && *r->next) {
        char *line = r->next;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            r->next = nl + 1;
        } else {
            r->next = NULL;
        }
        r->line++;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        while (*line && isspace((unsigned char)*line))
            line++;
        if (*line)
            return line;
    }
    return NULL;
}

static void lr_close(line_reader *r)
{
    free(r->text);
    r->text = NULL;
}

/* Parses whitespace-separated numbers; returns how many were read. */
static int parse_numbers(const char *s, double *v, int max, const char **rest)
{
    int n = 0;
    while (n < max) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *end;
        errno = 0;
        double x = strtod(s, &end);
        if (end == s || errno == ERANGE || !isfinite(x) || (*end && *end != ' ' && *end != '\t'))
            break;
        v[n++] = x;
        s = end;
    }
    if (rest) {
        while (*s == ' ' || *s == '\t')
            s++;
        *rest = s;
    }
    return n;
}

static int as_id(double v)
{
    return v == floor(v) && v >= 1 && v <= CUB_MAX_ID ? (int)v : -1;
}

void dhf_cub_tables_free(dhf_cub_tables *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_images; i++) {
        free(t->images[i].rel);
        free(t->images[i].parts);
        free(t->images[i].visible);
    }
    free(t->images);
    free(t->index_of_id);
    free(t->by_path);
    dhf_ds_free_strings(t->classes, t->n_classes);
    for (int i = 0; i < t->n_parts; i++)
        free(t->part_names[i]);
    memset(t, 0, sizeof *t);
}

static int image_of(const dhf_cub_tables *t, int id)
{
    return id >= 1 && id <= t->max_id ? t->index_of_id[id] : -1;
}

typedef struct {
    const char *rel;
    int index;
} path_entry;

static int cmp_path_entry(const void *a, const void *b)
{
    return strcmp(((const path_entry *)a)->rel, ((const path_entry *)b)->rel);
}

int dhf_cub_find_image(const dhf_cub_tables *t, const char *token)
{
    char *end;
    long v = strtol(token, &end, 10);
    if (*token && *end == '\0')
        return v >= 1 && v <= t->max_id ? t->index_of_id[v] : -1;
    size_t lo = 0, hi = t->n_images;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->images[t->by_path[mid]].rel, token);
        if (c == 0)
            return t->by_path[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int read_images(dhf_cub_tables *t)
{
    line_reader r;
    if (lr_open(&r, t->root, "images.txt") != 0)
        return -1;
    size_t cap = 0;
    char *line;
    int rc = 0;
    while ((line = lr_next(&r))) {
        double v;
        const char *rest;
        int id;
        if (parse_numbers(line, &v, 1, &rest) != 1 || (id = as_id(v)) < 0 || !*rest ||
            strchr(rest, ' ')) {
            rc = dhf_err_set("%s:%d: expected '<image_id> <path>', got '%s'", r.path, r.line, line);
            break;
        }
        if (t->n_images == cap) {
            cap = cap ? cap * 2 : 1024;
            dhf_cub_image *ni = realloc(t->images, cap * sizeof *ni);
            if (!ni) {
                rc = dhf_err_set("out of memory reading %s", r.path);
                break;
            }
            t->images = ni;
        }
        dhf_cub_image *im = &t->images[t->n_images];
        memset(im, 0, sizeof *im);
        im->id = id;
        im->cls = -1;
        im->class_id = -1;
        im->is_train = -1;
        im->bbox[0] = NAN;
        if (!(im->rel = dhf_strdup(rest))) {
            rc = dhf_err_set("out of memory reading %s", r.path);
            break;
        }
        t->n_images++;
        if (id > t->max_id)
            t->max_id = id;
    }
    if (rc == 0 && t->n_images == 0)
        rc = dhf_err_set("%s: lists no images", r.path);
    lr_close(&r);
    if (rc != 0)
        return -1;
    t->index_of_id = malloc(sizeof(int) * ((size_t)t->max_id + 1));
    t->by_path = malloc(sizeof(int) * t->n_images);
    if (!t->index_of_id || !t->by_path)
        return dhf_err_set("out of memory indexing %zu CUB images", t->n_images);
    for (int i = 0; i <= t->max_id; i++)
        t->index_of_id[i] = -1;
    for (size_t i = 0; i < t->n_images; i++) {
        int id = t->images[i].id;
        if (t->index_of_id[id] >= 0)
            return dhf_err_set("%s/images.txt: image id %d listed twice", t->root, id);
        t->index_of_id[id] = (int)i;
    }
    path_entry *order = malloc(sizeof(path_entry) * t->n_images);
    if (!order)
        return dhf_err_set("out of memory indexing %zu CUB images", t->n_images);
    for (size_t i = 0; i < t->n_images; i++)
        order[i] = (path_entry){t->images[i].rel, (int)i};
    qsort(order, t->n_images, sizeof *order, cmp_path_entry);
    for (size_t i = 0; i < t->n_images; i++) {
        if (i && strcmp(order[i].rel, order[i - 1].rel) == 0) {
            int id = t->images[order[i].index].id;
            free(order);
            return dhf_err_set("%s/images.txt: path of image %d listed twice", t->root, id);
        }
        t->by_path[i] = order[i].index;
    }
    free(order);
    return 0;
}

/* "<id> <value>" files: image_class_labels.txt and train_test_split.txt. */
static int read_id_value(dhf_cub_tables *t, const char *rel, const char *what, int is_split)
{
    line_reader r;
    if (lr_open(&r, t->root, rel) != 0)
        return -1;
    char *line;
    int rc = 0;
    while ((line = lr_next(&r))) {
        double v[2];
        int id, img;
        if (parse_numbers(line, v, 2, NULL) != 2 || (id = as_id(v[0])) < 0 || v[1] != floor(v[1])) {
            rc = dhf_err_set("%s:%d: expected '<image_id> <%s>', got '%s'", r.path, r.line, what,
                             line);
            break;
        }
        if ((img = image_of(t, id)) < 0) {
            rc = dhf_err_set("%s:%d: image id %d is not in images.txt", r.path, r.line, id);
            break;
        }
        if (is_split) {
            if (v[1] != 0 && v[1] != 1) {
                rc = dhf_err_set("%s:%d: %s must be 0 or 1, got %g", r.path, r.line, what, v[1]);
                break;
            }
            t->images[img].is_train = (int)v[1];
        } else {
            if (v[1] < 1 || v[1] > CUB_MAX_ID) {
                rc = dhf_err_set("%s:%d: %s must be in 1..%d, got %g", r.path, r.line, what,
                                 CUB_MAX_ID, v[1]);
                break;
            }
            t->images[img].class_id = (int)v[1];
        }
    }
    lr_close(&r);
    return rc;
}

static int read_boxes(dhf_cub_tables *t)
{
    line_reader r;
    if (lr_open(&r, t->root, "bounding_boxes.txt") != 0)
        return -1;
    char *line;
    int rc = 0;
    while ((line = lr_next(&r))) {
        double v[5];
        int id, img;
        if (parse_numbers(line, v, 5, NULL) != 5 || (id = as_id(v[0])) < 0) {
            rc = dhf_err_set("%s:%d: expected '<image_id> <x> <y> <width> <height>', got '%s'",
                             r.path, r.line, line);
            break;
        }
        if ((img = image_of(t, id)) < 0) {
            rc = dhf_err_set("%s:%d: image id %d is not in images.txt", r.path, r.line, id);
            break;
        }
        if (v[3] < 0 || v[4] < 0) {
            rc = dhf_err_set("%s:%d: box width and height must be >= 0, got %g x %g", r.path,
                             r.line, v[3], v[4]);
            break;
        }
        double *b = t->images[img].bbox;
        b[0] = v[1];
        b[1] = v[2];
        b[2] = v[1] + v[3];
        b[3] = v[2] + v[4];
    }
    lr_close(&r);
    return rc;
}

static int read_parts(dhf_cub_tables *t)
{
    line_reader r;
    if (lr_open(&r, t->root, "parts/parts.txt") != 0)
        return -1;
    char *line;
    int rc = 0;
    while ((line = lr_next(&r))) {
        double v;
        const char *rest;
        int id;
        if (parse_numbers(line, &v, 1, &rest) != 1 || (id = as_id(v)) < 0 || !*rest) {
            rc = dhf_err_set("%s:%d: expected '<part_id> <part name>', got '%s'", r.path, r.line,
                             line);
            break;
        }
        if (t->n_parts == DHF_CUB_MAX_PARTS) {
            rc = dhf_err_set("%s:%d: more than %d parts", r.path, r.line, DHF_CUB_MAX_PARTS);
            break;
        }
        for (int i = 0; i < t->n_parts; i++)
            if (t->part_ids[i] == id) {
                rc = dhf_err_set("%s:%d: part id %d listed twice", r.path, r.line, id);
                break;
            }
        if (rc)
            break;
        /* keep ascending order of ids (insertion) */
        int pos = t->n_parts;
        while (pos > 0 && t->part_ids[pos - 1] > id) {
            t->part_ids[pos] = t->part_ids[pos - 1];
            t->part_names[pos] = t->part_names[pos - 1];
            pos--;
        }
        t->part_ids[pos] = id;
        t->part_names[pos] = dhf_strdup(rest);
        t->n_parts++;
        if (!t->part_names[pos]) {
            rc = dhf_err_set("out of memory reading %s", r.path);
            break;
        }
    }
    if (rc == 0 && t->n_parts == 0)
        rc = dhf_err_set("%s: lists no parts", r.path);
    lr_close(&r);
    return rc;
}

static int part_index(const dhf_cub_tables *t, int id)
{
    for (int i = 0; i < t->n_parts; i++)
        if (t->part_ids[i] == id)
            return i;
    return -1;
}

static int read_part_locs(dhf_cub_tables *t)
{
    for (size_t i = 0; i < t->n_images; i++) {
        dhf_cub_image *im = &t->images[i];
        im->parts = calloc((size_t)t->n_parts * 2, sizeof(double));
        im->visible = calloc((size_t)t->n_parts, 1);
        if (!im->parts || !im->visible)
            return dhf_err_set("out of memory for CUB part locations");
    }
    line_reader r;
    if (lr_open(&r, t->root, "parts/part_locs.txt") != 0)
        return -1;
    char *line;
    int rc = 0;
    while ((line = lr_next(&r))) {
        double v[5];
        int id, img, part;
        if (parse_numbers(line, v, 5, NULL) != 5 || (id = as_id(v[0])) < 0 ||
            as_id(v[1]) < 0) {
            rc = dhf_err_set("%s:%d: expected '<image_id> <part_id> <x> <y> <visible>', got '%s'",
                             r.path, r.line, line);
            break;
        }
        if ((img = image_of(t, id)) < 0) {
            rc = dhf_err_set("%s:%d: image id %d is not in images.txt", r.path, r.line, id);
            break;
        }
        if (as_id(v[1]) < 0 || (part = part_index(t, as_id(v[1]))) < 0) {
            rc = dhf_err_set("%s:%d: part id %g is not in parts/parts.txt", r.path, r.line, v[1]);
            break;
        }
        if (v[4] != 0 && v[4] != 1) {
            rc = dhf_err_set("%s:%d: visible must be 0 or 1, got %g", r.path, r.line, v[4]);
            break;
        }
        dhf_cub_image *im = &t->images[img];
        im->parts[2 * part] = v[2];
        im->parts[2 * part + 1] = v[3];
        im->visible[part] = (unsigned char)v[4];
        t->n_part_locs++;
    }
    lr_close(&r);
    return rc;
}

/* Class = the folder part of the images.txt path (official: "001.Black_footed_Albatross"). */
static int assign_classes(dhf_cub_tables *t)
{
    for (size_t i = 0; i < t->n_images; i++) {
        const dhf_cub_image *im = &t->images[i];
        if (im->class_id < 0)
            return dhf_err_set("%s/image_class_labels.txt: no class for image %d (%s)", t->root,
                               im->id, im->rel);
        if (im->is_train < 0)
            return dhf_err_set("%s/train_test_split.txt: no split flag for image %d (%s)", t->root,
                               im->id, im->rel);
        if (isnan(im->bbox[0]))
            return dhf_err_set("%s/bounding_boxes.txt: no box for image %d (%s)", t->root, im->id,
                               im->rel);
    }
    char **names = NULL;
    int n = 0;
    for (size_t i = 0; i < t->n_images; i++) {
        const dhf_cub_image *im = &t->images[i];
        const char *slash = strchr(im->rel, '/');
        char cls[512];
        if (slash)
            snprintf(cls, sizeof cls, "%.*s", (int)(slash - im->rel), im->rel);
        else
            snprintf(cls, sizeof cls, "class_%03d", im->class_id);
        if (dhf_ds_category_known(names, n, cls) >= 0)
            continue;
        char **nv = realloc(names, sizeof(char *) * (size_t)(n + 1));
        if (!nv || !(nv[n] = dhf_strdup(cls))) {
            dhf_ds_free_strings(nv ? nv : names, n);
            return dhf_err_set("out of memory");
        }
        names = nv;
        n++;
    }
    dhf_dataset tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = dhf_ds_set_categories(&tmp, names, n); /* sorted copy */
    dhf_ds_free_strings(names, n);
    if (rc != 0)
        return -1;
    t->classes = tmp.categories;
    t->n_classes = tmp.n_categories;
    for (size_t i = 0; i < t->n_images; i++) {
        dhf_cub_image *im = &t->images[i];
        const char *slash = strchr(im->rel, '/');
        char cls[512];
        if (slash)
            snprintf(cls, sizeof cls, "%.*s", (int)(slash - im->rel), im->rel);
        else
            snprintf(cls, sizeof cls, "class_%03d", im->class_id);
        im->cls = dhf_ds_category_known(t->classes, t->n_classes, cls);
    }
    /* One folder must mean one class label, or pairs would mix classes. */
    for (int c = 0; c < t->n_classes; c++) {
        int label = -1;
        for (size_t i = 0; i < t->n_images; i++) {
            if (t->images[i].cls != c)
                continue;
            if (label < 0)
                label = t->images[i].class_id;
            else if (label != t->images[i].class_id)
                return dhf_err_set("%s/image_class_labels.txt: image %d in folder %s has class %d, "
                                   "other images there have class %d",
                                   t->root, t->images[i].id, t->classes[c],
                                   t->images[i].class_id, label);
        }
    }
    return 0;
}

int dhf_cub_read_tables(const char *root, dhf_cub_tables *t)
{
    memset(t, 0, sizeof *t);
    if (dhf_ds_copy(t->root, sizeof t->root, root, "CUB root") != 0)
        return -1;
    if (!dhf_is_dir(root))
        return dhf_err_set("%s: not a directory", root);
    if (read_images(t) || read_id_value(t, "image_class_labels.txt", "class_id", 0) ||
        read_id_value(t, "train_test_split.txt", "is_training_image", 1) || read_boxes(t) ||
        read_parts(t) || read_part_locs(t) || assign_classes(t)) {
        dhf_cub_tables_free(t);
        return -1;
    }
    return 0;
}
