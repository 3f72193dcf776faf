/* predictions.c — writing and reading predictions.jsonl lines (see predictions.h). */
#include "eval/predictions.h"
#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---------------------------------------------------------------- */

static bool add_xy(cJSON *o, const char *key, const double *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    if (!a)
        return false;
    for (int i = 0; i < n; i++)
        if (!cJSON_AddItemToArray(a, dhf_json_exact_number(v[i])))
            return false;
    return true;
}

static bool add_thresholds(cJSON *o, const char *key, double size, const double *alphas, int n_alphas)
{
    cJSON *t = cJSON_AddObjectToObject(o, key);
    char buf[40];
    for (int a = 0; t && a < n_alphas; a++)
        if (!dhf_json_add_exact(t, dhf_pck_alpha_key(alphas[a], buf, sizeof buf),
                                dhf_pck_threshold(alphas[a], size)))
            return false;
    return t != NULL;
}

cJSON *dhf_prediction_to_json(const dhf_prediction *p, const double *alphas, int n_alphas)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    double size_img = dhf_pck_img_size(p->target_size[0], p->target_size[1]);
    double size_bbox = dhf_pck_bbox_size(p->target_bbox[0], p->target_bbox[1], p->target_bbox[2],
                                         p->target_bbox[3]);
    double tsize[2] = {p->target_size[0], p->target_size[1]};
    bool ok = cJSON_AddStringToObject(o, "pair_id", p->pair_id) &&
              dhf_json_add_exact(o, "pair", p->pair) &&
              cJSON_AddStringToObject(o, "category", p->category) &&
              dhf_json_add_exact(o, "kp_id", p->kp_id) &&
              add_xy(o, "src_xy", p->src, 2) && add_xy(o, "gt_xy", p->gt, 2) &&
              add_xy(o, "pred_xy", p->pred, 2) &&
              dhf_json_add_exact(o, "distance", dhf_pck_distance(p->pred, p->gt)) &&
              add_xy(o, "target_size", tsize, 2) && add_xy(o, "target_bbox", p->target_bbox, 4) &&
              dhf_json_add_exact(o, "img_size", size_img) && dhf_json_add_exact(o, "bbox_size", size_bbox) &&
              add_thresholds(o, "threshold_img", size_img, alphas, n_alphas) &&
              add_thresholds(o, "threshold_bbox", size_bbox, alphas, n_alphas);
    if (ok && !isnan(p->score))
        ok = dhf_json_add_exact(o, "score", p->score) != NULL;
    for (int a = 0; ok && a < DHF_PCK_NATTRS; a++)
        if (p->attr[a] >= 0)
            ok = dhf_json_add_exact(o, dhf_pck_attr_names[a], p->attr[a]) != NULL;
    if (ok && p->mutual >= 0)
        ok = cJSON_AddBoolToObject(o, "mutual", p->mutual) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- reading ---------------------------------------------------------------- */

/* pair_id -> pair index: open addressing over FNV-1a, grown at half load. */
typedef struct {
    char **keys;
    int *vals;
    size_t cap, n;
} id_map;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int id_map_get_or_add(id_map *m, const char *key, int next, int *out)
{
    if (2 * (m->n + 1) > m->cap) {
        size_t ncap = m->cap ? 2 * m->cap : 1024;
        char **nk = calloc(ncap, sizeof *nk);
        int *nv = calloc(ncap, sizeof *nv);
        if (!nk || !nv) {
            free(nk), free(nv);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = str_hash(m->keys[i]) & (ncap - 1);
                while (nk[j])
                    j = (j + 1) & (ncap - 1);
                nk[j] = m->keys[i];
                nv[j] = m->vals[i];
            }
        free(m->keys), free(m->vals);
        m->keys = nk, m->vals = nv, m->cap = ncap;
    }
    size_t j = str_hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], key) == 0) {
            *out = m->vals[j];
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = strdup(key);
    if (!m->keys[j])
        return -1;
    m->vals[j] = next;
    m->n++;
    *out = next;
    return 0;
}

static void id_map_free(id_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys), free(m->vals);
}

static int read_numbers(const cJSON *o, const char *field, double *v, int n, const char *where, bool *present)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, field);
    *present = a != NULL;
    if (!a)
        return 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return dhf_err_set("%s: field '%s': expected an array of %d numbers", where, field, n);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return dhf_err_set("%s: field '%s'[%d]: expected a finite number, got %s", where, field, i,
                               cJSON_IsNumber(x) ? "a non-finite number" : "another type");
        v[i] = x->valuedouble;
    }
    return 0;
}

static int read_number(const cJSON *o, const char *field, double *v, const char *where, bool *present)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, field);
    *present = x != NULL && !cJSON_IsNull(x);
    if (!*present)
        return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return dhf_err_set("%s: field '%s': expected a finite number", where, field);
    *v = x->valuedouble;
    return 0;
}

static int category_index(char ***names, int *n, int *cap, const char *name, int *out)
{
    for (int i = *n - 1; i >= 0; i--)   /* lines of one category come together: search from the end */
        if (strcmp((*names)[i], name) == 0) {
            *out = i;
            return 0;
        }
    if (*n == *cap) {
        int ncap = *cap ? 2 * *cap : 32;
        char **nn = realloc(*names, (size_t)ncap * sizeof *nn);
        if (!nn)
            return -1;
        *names = nn, *cap = ncap;
    }
    (*names)[*n] = strdup(name);
    if (!(*names)[*n])
        return -1;
    *out = (*n)++;
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int alphas_from_line(const cJSON *o, dhf_predictions *out, const char *where)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "threshold_img");
    if (!cJSON_IsObject(t))
        return 0;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, t)
    {
        char *end = NULL;
        double a = strtod(it->string, &end);
        if (end == it->string || *end)
            return dhf_err_set("%s: field 'threshold_img': key '%s' is not an alpha", where, it->string);
        if (n == DHF_PCK_MAX_ALPHAS)
            return dhf_err_set("%s: field 'threshold_img': more than %d alphas", where, DHF_PCK_MAX_ALPHAS);
        out->alphas[n++] = a;
    }
    out->n_alphas = n;
    return 0;
}

void dhf_predictions_free(dhf_predictions *p)
{
    if (!p)
        return;
    free(p->kps);
    for (int i = 0; i < p->n_categories; i++)
        free(p->categories[i]);
    free(p->categories);
    memset(p, 0, sizeof *p);
}

int dhf_predictions_load(const char *path, dhf_predictions *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return dhf_err_set("%s: cannot open: %s", path, strerror(errno));
    id_map pairs = {0};
    int cat_cap = 0;
    size_t kp_cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    long lineno = 0;
    char where[4200];
    int rc = -1;
    const char *last_id = NULL;
    int last_pair = -1;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        snprintf(where, sizeof where, "%s:%ld", path, lineno);
        size_t s = strspn(line, " \t\r\n");
        if (line[s] == '\0')
            continue;
        cJSON *o = cJSON_Parse(line);
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            dhf_err_set("%s: not a JSON object", where);
            goto done;
        }
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pair_id");
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(o, "category");
        dhf_pck_kp kp;
        memset(&kp, 0, sizeof kp);
        double size2[2], bbox[4];
        bool have_gt, have_pred, have_size, have_bbox, have_isize, have_bsize, have_attr;
        if (!cJSON_IsString(pid) || !pid->valuestring[0]) {
            dhf_err_set("%s: field 'pair_id': expected a non-empty string", where);
            goto bad_line;
        }
        if (!cJSON_IsString(cat) || !cat->valuestring[0]) {
            dhf_err_set("%s: field 'category': expected a non-empty string", where);
            goto bad_line;
        }
        if (read_numbers(o, "gt_xy", kp.gt, 2, where, &have_gt) ||
            read_numbers(o, "pred_xy", kp.pred, 2, where, &have_pred) ||
            read_numbers(o, "target_size", size2, 2, where, &have_size) ||
            read_numbers(o, "target_bbox", bbox, 4, where, &have_bbox) ||
            read_number(o, "img_size", &kp.size[DHF_PCK_IMG], where, &have_isize) ||
            read_number(o, "bbox_size", &kp.size[DHF_PCK_BBOX], where, &have_bsize))
            goto bad_line;
        if (!have_gt || !have_pred) {
            dhf_err_set("%s: field '%s': missing", where, have_gt ? "pred_xy" : "gt_xy");
            goto bad_line;
        }
        /* Sizes come from the raw size and box when present, so a file cannot
         * carry a threshold base inconsistent with its own annotation. */
        if (have_size)
            kp.size[DHF_PCK_IMG] = dhf_pck_img_size(size2[0], size2[1]);
        else if (!have_isize) {
            dhf_err_set("%s: field 'target_size': missing (and no 'img_size')", where);
            goto bad_line;
        }
        if (have_bbox)
            kp.size[DHF_PCK_BBOX] = dhf_pck_bbox_size(bbox[0], bbox[1], bbox[2], bbox[3]);
        else if (!have_bsize) {
            dhf_err_set("%s: field 'target_bbox': missing (and no 'bbox_size')", where);
            goto bad_line;
        }
        for (int k = 0; k < DHF_PCK_NKINDS; k++)
            if (!(kp.size[k] > 0)) {
                dhf_err_set("%s: the %s threshold base must be > 0, got %g", where, dhf_pck_kind_names[k],
                            kp.size[k]);
                goto bad_line;
            }
        for (int a = 0; a < DHF_PCK_NATTRS; a++) {
            double v = -1;
            if (read_number(o, dhf_pck_attr_names[a], &v, where, &have_attr))
                goto bad_line;
            if (have_attr && (v != floor(v) || v < 0 || v > 1e6)) {
                dhf_err_set("%s: field '%s': expected a non-negative integer", where, dhf_pck_attr_names[a]);
                goto bad_line;
            }
            kp.attr[a] = have_attr ? (int)v : -1;
        }
        if (out->n_kps == 0 && alphas_from_line(o, out, where) != 0)
            goto bad_line;
        if (last_id && strcmp(last_id, pid->valuestring) == 0) {
            kp.pair = last_pair;
        } else {
            if (id_map_get_or_add(&pairs, pid->valuestring, out->n_pairs, &kp.pair) != 0) {
                dhf_err_set("%s: out of memory", where);
                goto bad_line;
            }
            if (kp.pair == out->n_pairs)
                out->n_pairs++;
            /* Find the map's own copy of the id so last_id outlives this line. */
            size_t j = str_hash(pid->valuestring) & (pairs.cap - 1);
            while (strcmp(pairs.keys[j], pid->valuestring) != 0)
                j = (j + 1) & (pairs.cap - 1);
            last_id = pairs.keys[j];
            last_pair = kp.pair;
        }
        if (category_index(&out->categories, &out->n_categories, &cat_cap, cat->valuestring, &kp.category)) {
            dhf_err_set("%s: out of memory", where);
            goto bad_line;
        }
        if (out->n_kps == kp_cap) {
            size_t ncap = kp_cap ? 2 * kp_cap : 1024;
            dhf_pck_kp *nk = realloc(out->kps, ncap * sizeof *nk);
            if (!nk) {
                dhf_err_set("%s: out of memory", where);
                goto bad_line;
            }
            out->kps = nk, kp_cap = ncap;
        }
        out->kps[out->n_kps++] = kp;
        cJSON_Delete(o);
        continue;
    bad_line:
        cJSON_Delete(o);
        goto done;
    }
    if (ferror(f)) {
        dhf_err_set("%s: read error: %s", path, strerror(errno));
        goto done;
    }
    if (out->n_kps == 0) {
        dhf_err_set("%s: no predictions (empty file)", path);
        goto done;
    }
    /* Categories sorted by name, as dataset tables are; remap the indices. */
    {
        int n = out->n_categories;
        char **sorted = malloc((size_t)n * sizeof *sorted);
        int *remap = malloc((size_t)n * sizeof *remap);
        if (!sorted || !remap) {
            free(sorted), free(remap);
            dhf_err_set("%s: out of memory", path);
            goto done;
        }
        memcpy(sorted, out->categories, (size_t)n * sizeof *sorted);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_str_ptr);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (sorted[j] == out->categories[i]) {
                    remap[i] = j;
                    break;
                }
        for (size_t k = 0; k < out->n_kps; k++)
            out->kps[k].category = remap[out->kps[k].category];
        free(out->categories);
        out->categories = sorted;
        free(remap);
    }
    rc = 0;
done:
    free(line);
    fclose(f);
    id_map_free(&pairs);
    if (rc != 0)
        dhf_predictions_free(out);
    return rc;
}
