/* cub.c — CUB-200-2011 as keypoint pairs (protocol in docs/EVAL.md, section
 * "CUB-200-2011 protocol"): ordered pairs of distinct same-class images from one
 * split, keeping only the parts visible in both; every candidate pair, N per
 * class drawn with a seed, or an explicit list. */
#include "eval/cub_tables.h"
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "core/error.h"
#include "core/str.h"
#include "core/fsutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int common_visible(const dhf_cub_tables *t, const dhf_cub_image *a, const dhf_cub_image *b)
{
    int n = 0;
    for (int k = 0; k < t->n_parts; k++)
        n += a->visible[k] && b->visible[k];
    return n;
}

static int make_pair(const dhf_cub_tables *t, int s, int d, dhf_pair *p)
{
    const dhf_cub_image *a = &t->images[s], *b = &t->images[d];
    memset(p, 0, sizeof *p);
    char id[700], path[4096];
    snprintf(id, sizeof id, "%d-%d:%s", a->id, b->id, t->classes[a->cls]);
    if (!(p->id = dhf_strdup(id)) || !(p->category = dhf_strdup(t->classes[a->cls])) ||
        !(p->src_key = dhf_strdup(a->rel)) || !(p->trg_key = dhf_strdup(b->rel)))
        return dhf_err_set("out of memory");
    if ((size_t)snprintf(path, sizeof path, "%s/images/%s", t->root, a->rel) >= sizeof path ||
        !(p->src_path = dhf_strdup(path)))
        return dhf_err_set("image path too long or out of memory: %s", a->rel);
    if ((size_t)snprintf(path, sizeof path, "%s/images/%s", t->root, b->rel) >= sizeof path ||
        !(p->trg_path = dhf_strdup(path)))
        return dhf_err_set("image path too long or out of memory: %s", b->rel);
    memcpy(p->src_bbox, a->bbox, sizeof p->src_bbox);
    memcpy(p->trg_bbox, b->bbox, sizeof p->trg_bbox);
    if (dhf_ds_alloc_kps(p, common_visible(t, a, b)) != 0)
        return -1;
    int j = 0;
    for (int k = 0; k < t->n_parts; k++) {
        if (!(a->visible[k] && b->visible[k]))
            continue;
        p->src_kps[2 * j] = a->parts[2 * k];
        p->src_kps[2 * j + 1] = a->parts[2 * k + 1];
        p->trg_kps[2 * j] = b->parts[2 * k];
        p->trg_kps[2 * j + 1] = b->parts[2 * k + 1];
        p->kp_ids[j] = t->part_ids[k];
        j++;
    }
    p->viewpoint_variation = p->scale_variation = p->truncation = p->occlusion = p->mirror = -1;
    return 0;
}

static int add_pair(dhf_dataset *ds, size_t *cap, const dhf_cub_tables *t, int s, int d)
{
    dhf_pair p;
    if (make_pair(t, s, d, &p) != 0 || dhf_ds_append(ds, cap, &p) != 0) {
        dhf_pair_free(&p);
        return -1;
    }
    return 0;
}

static int cmp_image_id(const void *a, const void *b, const dhf_cub_tables *t)
{
    int x = t->images[*(const int *)a].id, y = t->images[*(const int *)b].id;
    return x < y ? -1 : x > y;
}

/* Insertion sort by image id (per-class lists are short; avoids a qsort context). */
static void sort_by_id(int *v, int n, const dhf_cub_tables *t)
{
    for (int i = 1; i < n; i++) {
        int x = v[i], j = i;
        while (j > 0 && cmp_image_id(&v[j - 1], &x, t) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static int draw_pairs(dhf_dataset *ds, const dhf_cub_tables *t, int want_train, int per_class,
                      uint64_t seed)
{
    size_t cap = 0;
    int *members = malloc(sizeof(int) * t->n_images);
    int *cand = NULL;    /* [n][2] image indices */
    size_t *chosen = NULL;
    int rc = 0;
    if (!members)
        return dhf_err_set("out of memory pairing CUB images");
    for (int c = 0; c < t->n_classes && rc == 0; c++) {
        int n = 0;
        for (size_t i = 0; i < t->n_images; i++)
            if (t->images[i].cls == c && t->images[i].is_train == want_train)
                members[n++] = (int)i;
        sort_by_id(members, n, t);
        size_t n_cand = 0;
        free(cand);
        cand = malloc(sizeof(int) * 2 * ((size_t)n * (size_t)n + 1));
        if (!cand) {
            rc = dhf_err_set("out of memory pairing CUB class %s", t->classes[c]);
            break;
        }
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                if (a == b || !common_visible(t, &t->images[members[a]], &t->images[members[b]]))
                    continue;
                cand[2 * n_cand] = members[a];
                cand[2 * n_cand + 1] = members[b];
                n_cand++;
            }
        size_t k = per_class > 0 && (size_t)per_class < n_cand ? (size_t)per_class : n_cand;
        free(chosen);
        chosen = malloc(sizeof(size_t) * (k ? k : 1));
        if (!chosen) {
            rc = dhf_err_set("out of memory pairing CUB class %s", t->classes[c]);
            break;
        }
        const char *name = t->classes[c];
        dhf_draw_indices(n_cand, k, seed ^ dhf_fnv1a64(name, strlen(name)), chosen);
        for (size_t i = 0; i < k && rc == 0; i++)
            rc = add_pair(ds, &cap, t, cand[2 * chosen[i]], cand[2 * chosen[i] + 1]);
    }
    free(members);
    free(cand);
    free(chosen);
    return rc;
}

static int read_pair_list(dhf_dataset *ds, const dhf_cub_tables *t, const char *list_path,
                          int want_train)
{
    char *text;
    if (dhf_read_file(list_path, &text, NULL) != 0)
        return -1;
    size_t cap = 0;
    int line_no = 0, rc = 0;
    const char *split = want_train ? "train" : "test";
    for (char *line = text, *next; line && *line && rc == 0; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char a[1024], b[1024], extra[2];
        while (isspace((unsigned char)*line))
            line++;
        if (!*line || *line == '#')
            continue;
        if (sscanf(line, "%1023s %1023s %1s", a, b, extra) != 2) {
            rc = dhf_err_set("%s:%d: expected '<source> <target>' (image ids or images.txt paths)",
                             list_path, line_no);
            break;
        }
        int s = dhf_cub_find_image(t, a), d = dhf_cub_find_image(t, b);
        if (s < 0 || d < 0) {
            rc = dhf_err_set("%s:%d: image '%s' is not in images.txt", list_path, line_no,
                             s < 0 ? a : b);
            break;
        }
        const dhf_cub_image *si = &t->images[s], *di = &t->images[d];
        if (s == d)
            rc = dhf_err_set("%s:%d: source and target are the same image", list_path, line_no);
        else if (si->cls != di->cls)
            rc = dhf_err_set("%s:%d: images %d (%s) and %d (%s) are of different classes",
                             list_path, line_no, si->id, t->classes[si->cls], di->id,
                             t->classes[di->cls]);
        else if (si->is_train != want_train || di->is_train != want_train)
            rc = dhf_err_set("%s:%d: image %d is not in the %s split", list_path, line_no,
                             si->is_train != want_train ? si->id : di->id, split);
        else if (!common_visible(t, si, di))
            rc = dhf_err_set("%s:%d: images %d and %d share no visible part", list_path, line_no,
                             si->id, di->id);
        else
            rc = add_pair(ds, &cap, t, s, d);
    }
    free(text);
    if (rc == 0 && ds->n_pairs == 0)
        rc = dhf_err_set("%s: lists no pairs", list_path);
    if (rc == 0 && ds->n_pairs > 1) {
        const char **ids = malloc(sizeof(char *) * ds->n_pairs);
        if (!ids)
            return dhf_err_set("out of memory checking %s", list_path);
        for (size_t i = 0; i < ds->n_pairs; i++)
            ids[i] = ds->pairs[i].id;
        qsort(ids, ds->n_pairs, sizeof(char *), dhf_ds_cmp_str);
        for (size_t i = 1; i < ds->n_pairs && rc == 0; i++)
            if (strcmp(ids[i], ids[i - 1]) == 0)
                rc = dhf_err_set("%s: pair %s listed twice", list_path, ids[i]);
        free(ids);
    }
    return rc;
}

int dhf_cub_load(const char *root, const dhf_cub_options *opt, dhf_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    dhf_cub_options defaults = {0};
    if (!opt)
        opt = &defaults;
    const char *split = opt->split && opt->split[0] ? opt->split : "test";
    if (strcmp(split, "train") && strcmp(split, "test"))
        return dhf_err_set("CUB-200-2011 split '%s': expected train or test", split);
    if (opt->pairs_per_class < 0)
        return dhf_err_set("CUB-200-2011: pairs per class must be >= 0, got %d",
                           opt->pairs_per_class);
    int want_train = strcmp(split, "train") == 0;
    dhf_cub_tables t;
    if (dhf_cub_read_tables(root, &t) != 0)
        return -1;
    snprintf(ds->name, sizeof ds->name, "cub-200-2011");
    snprintf(ds->split, sizeof ds->split, "%s", split);
    int rc = dhf_ds_copy(ds->root, sizeof ds->root, root, "dataset root");
    if (rc == 0)
        rc = dhf_path_join(ds->image_root, sizeof ds->image_root, root, "images");
    if (rc == 0)
        rc = dhf_ds_set_categories(ds, t.classes, t.n_classes);
    int from_list = opt->pair_list && opt->pair_list[0];
    if (rc == 0)
        rc = from_list ? read_pair_list(ds, &t, opt->pair_list, want_train)
                       : draw_pairs(ds, &t, want_train, opt->pairs_per_class, opt->seed);
    if (rc == 0 && ds->n_pairs == 0)
        rc = dhf_err_set("%s: no %s-split image pairs share a visible part", root, split);
    dhf_cub_tables_free(&t);
    if (rc != 0) {
        dhf_dataset_free(ds);
        return -1;
    }
    memset(&ds->subset, 0, sizeof ds->subset);
    if (from_list) {
        snprintf(ds->subset.name, sizeof ds->subset.name, "list:%.240s",
                 dhf_basename(opt->pair_list));
        snprintf(ds->subset.list_path, sizeof ds->subset.list_path, "%s", opt->pair_list);
    } else if (opt->pairs_per_class > 0) {
        snprintf(ds->subset.name, sizeof ds->subset.name, "per-category-%d", opt->pairs_per_class);
        ds->subset.per_category = opt->pairs_per_class;
        ds->subset.seed = opt->seed;
    } else {
        snprintf(ds->subset.name, sizeof ds->subset.name, "full");
    }
    dhf_subset_update_hash(ds);
    return 0;
}
