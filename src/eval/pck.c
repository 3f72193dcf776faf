/* pck.c — PCK@α judgement, averages (pooled, per image, per category,
 * breakdowns) and their JSON/Markdown renderings. See pck.h for the protocol. */
#include "eval/pck.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const dhf_pck_attr_names[DHF_PCK_NATTRS] = {
    "viewpoint_variation", "scale_variation", "truncation", "occlusion"};
const char *const dhf_pck_kind_names[DHF_PCK_NKINDS] = {"img", "bbox"};

double dhf_pck_distance(const double pred[2], const double gt[2])
{
    /* numpy.linalg.norm(axis=-1) is sqrt(sum of squares), not hypot(): the two
     * can differ in the last ulp, which matters exactly at a threshold. */
    double dx = pred[0] - gt[0];
    double dy = pred[1] - gt[1];
    return sqrt(dx * dx + dy * dy);
}

double dhf_pck_img_size(double width, double height)
{
    return width > height ? width : height;
}

double dhf_pck_bbox_size(double left, double top, double right, double bottom)
{
    double w = right - left, h = bottom - top;
    return w > h ? w : h;
}

double dhf_pck_threshold(double alpha, double size)
{
    return alpha * size;
}

bool dhf_pck_correct(double distance, double alpha, double size)
{
    return distance <= dhf_pck_threshold(alpha, size);
}

int dhf_pck_check_alphas(const double *alphas, int n_alphas)
{
    if (n_alphas < 1 || n_alphas > DHF_PCK_MAX_ALPHAS)
        return dhf_err_set("alphas: expected 1..%d values, got %d", DHF_PCK_MAX_ALPHAS, n_alphas);
    for (int a = 0; a < n_alphas; a++) {
        if (!(alphas[a] > 0.0 && alphas[a] <= 1.0))
            return dhf_err_set("alphas[%d]: expected a value in (0, 1], got %g", a, alphas[a]);
        for (int b = 0; b < a; b++)
            if (alphas[b] == alphas[a])
                return dhf_err_set("alphas[%d]: %g appears twice", a, alphas[a]);
    }
    return 0;
}

const char *dhf_pck_alpha_key(double alpha, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, alpha);
        if (strtod(buf, NULL) == alpha)
            break;
    }
    return buf;
}

cJSON *dhf_json_exact_number(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char buf[40];
    /* Integers as integers ("240", not "2.4e+02"); otherwise the shortest
     * decimal that reads back to the same double. */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, sizeof buf, "%.0f", v == 0 ? 0.0 : v);   /* no "-0" */
        return cJSON_CreateRaw(buf);
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(buf);
}

cJSON *dhf_json_add_exact(cJSON *obj, const char *key, double v)
{
    cJSON *item = dhf_json_exact_number(v);
    if (!item)
        return NULL;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

int dhf_pck_alpha_index(const dhf_pck_report *r, double alpha)
{
    for (int a = 0; a < r->n_alphas; a++)
        if (r->alphas[a] == alpha)
            return a;
    return -1;
}

/* ---- computation ---------------------------------------------------------- */

/* Per-pair tallies: the unit every average is built from. */
typedef struct {
    long n;
    int category;
    int attr[DHF_PCK_NATTRS];
    long correct[DHF_PCK_NKINDS][DHF_PCK_MAX_ALPHAS];
} pair_tally;

typedef bool (*pair_filter)(const pair_tally *p, int which, int value);

static bool filter_all(const pair_tally *p, int which, int value)
{
    (void)which, (void)value;
    return p->n > 0;
}

static bool filter_category(const pair_tally *p, int which, int value)
{
    (void)which;
    return p->n > 0 && p->category == value;
}

static bool filter_attr(const pair_tally *p, int which, int value)
{
    return p->n > 0 && p->attr[which] == value;
}

static void group_stats(const pair_tally *pairs, int n_pairs, int n_alphas, pair_filter keep,
                        int which, int value, dhf_pck_stats *s)
{
    double image_sum[DHF_PCK_NKINDS][DHF_PCK_MAX_ALPHAS] = {{0}};
    memset(s, 0, sizeof *s);
    for (int p = 0; p < n_pairs; p++) {
        const pair_tally *t = &pairs[p];
        if (!keep(t, which, value))
            continue;
        s->n_pairs++;
        s->n_keypoints += t->n;
        for (int k = 0; k < DHF_PCK_NKINDS; k++)
            for (int a = 0; a < n_alphas; a++) {
                s->n_correct[k][a] += t->correct[k][a];
                image_sum[k][a] += (double)t->correct[k][a] / (double)t->n;
            }
    }
    for (int k = 0; k < DHF_PCK_NKINDS; k++)
        for (int a = 0; a < DHF_PCK_MAX_ALPHAS; a++) {
            bool have = a < n_alphas && s->n_keypoints > 0;
            s->per_keypoint[k][a] = have ? (double)s->n_correct[k][a] / (double)s->n_keypoints : NAN;
            s->per_image[k][a] = have ? image_sum[k][a] / (double)s->n_pairs : NAN;
        }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void dhf_pck_report_free(dhf_pck_report *r)
{
    if (!r)
        return;
    if (r->category_names)
        for (int c = 0; c < r->n_categories; c++)
            free(r->category_names[c]);
    free(r->category_names);
    free(r->per_category);
    for (int a = 0; a < DHF_PCK_NATTRS; a++)
        free(r->buckets[a]);
    memset(r, 0, sizeof *r);
}

int dhf_pck_compute(const dhf_pck_kp *kps, size_t n_kps, int n_pairs,
                    const char *const *category_names, int n_categories,
                    const double *alphas, int n_alphas, dhf_pck_report *out)
{
    memset(out, 0, sizeof *out);
    if (dhf_pck_check_alphas(alphas, n_alphas) != 0)
        return -1;
    if (n_pairs < 0 || n_categories < 0)
        return dhf_err_set("pck: negative pair or category count");
    out->n_alphas = n_alphas;
    memcpy(out->alphas, alphas, (size_t)n_alphas * sizeof *alphas);

    pair_tally *pairs = calloc(n_pairs > 0 ? (size_t)n_pairs : 1, sizeof *pairs);
    if (!pairs)
        return dhf_err_set("pck: out of memory for %d pairs", n_pairs);
    for (size_t i = 0; i < n_kps; i++) {
        const dhf_pck_kp *kp = &kps[i];
        if (kp->pair < 0 || kp->pair >= n_pairs || kp->category < 0 || kp->category >= n_categories) {
            free(pairs);
            return dhf_err_set("pck: keypoint %zu: pair %d / category %d out of range (%d pairs, %d categories)",
                               i, kp->pair, kp->category, n_pairs, n_categories);
        }
        for (int k = 0; k < DHF_PCK_NKINDS; k++)
            if (!(kp->size[k] > 0.0) || !isfinite(kp->size[k])) {
                free(pairs);
                return dhf_err_set("pck: keypoint %zu (pair %d): %s size must be > 0, got %g", i,
                                   kp->pair, dhf_pck_kind_names[k], kp->size[k]);
            }
        pair_tally *t = &pairs[kp->pair];
        if (t->n == 0) {
            t->category = kp->category;
            memcpy(t->attr, kp->attr, sizeof t->attr);
        } else if (t->category != kp->category || memcmp(t->attr, kp->attr, sizeof t->attr) != 0) {
            free(pairs);
            return dhf_err_set("pck: keypoint %zu: pair %d mixes categories or attribute values "
                               "between its keypoints", i, kp->pair);
        }
        t->n++;
        double d = dhf_pck_distance(kp->pred, kp->gt);
        for (int k = 0; k < DHF_PCK_NKINDS; k++)
            for (int a = 0; a < n_alphas; a++)
                t->correct[k][a] += dhf_pck_correct(d, alphas[a], kp->size[k]);
    }

    group_stats(pairs, n_pairs, n_alphas, filter_all, 0, 0, &out->overall);

    out->n_categories = n_categories;
    out->category_names = calloc(n_categories > 0 ? (size_t)n_categories : 1, sizeof(char *));
    out->per_category = calloc(n_categories > 0 ? (size_t)n_categories : 1, sizeof(dhf_pck_stats));
    if (!out->category_names || !out->per_category)
        goto oom;
    for (int c = 0; c < n_categories; c++) {
        out->category_names[c] = strdup(category_names[c] ? category_names[c] : "");
        if (!out->category_names[c])
            goto oom;
        group_stats(pairs, n_pairs, n_alphas, filter_category, 0, c, &out->per_category[c]);
    }
    for (int k = 0; k < DHF_PCK_NKINDS; k++)
        for (int a = 0; a < DHF_PCK_MAX_ALPHAS; a++) {
            double sum_kp = 0, sum_img = 0;
            int used = 0;
            for (int c = 0; c < n_categories && a < n_alphas; c++) {
                if (out->per_category[c].n_keypoints == 0)
                    continue;
                sum_kp += out->per_category[c].per_keypoint[k][a];
                sum_img += out->per_category[c].per_image[k][a];
                used++;
            }
            out->category_mean[0][k][a] = used ? sum_kp / used : NAN;
            out->category_mean[1][k][a] = used ? sum_img / used : NAN;
        }

    /* Breakdowns: distinct present values of each attribute, ascending. */
    int *values = malloc((n_pairs > 0 ? (size_t)n_pairs : 1) * sizeof *values);
    if (!values)
        goto oom;
    for (int at = 0; at < DHF_PCK_NATTRS; at++) {
        int nv = 0;
        for (int p = 0; p < n_pairs; p++)
            if (pairs[p].n > 0 && pairs[p].attr[at] >= 0)
                values[nv++] = pairs[p].attr[at];
        if (nv == 0)
            continue;
        qsort(values, (size_t)nv, sizeof *values, cmp_int);
        int distinct = 0;
        for (int i = 0; i < nv; i++)
            if (i == 0 || values[i] != values[i - 1])
                values[distinct++] = values[i];
        out->buckets[at] = calloc((size_t)distinct, sizeof(dhf_pck_bucket));
        if (!out->buckets[at]) {
            free(values);
            goto oom;
        }
        out->n_buckets[at] = distinct;
        for (int i = 0; i < distinct; i++) {
            out->buckets[at][i].value = values[i];
            group_stats(pairs, n_pairs, n_alphas, filter_attr, at, values[i],
                        &out->buckets[at][i].stats);
        }
    }
    free(values);
    free(pairs);
    return 0;

oom:
    free(pairs);
    dhf_pck_report_free(out);
    return dhf_err_set("pck: out of memory");
}

/* ---- JSON ------------------------------------------------------------------ */

static cJSON *alpha_map(const dhf_pck_report *r, const double *v)
{
    cJSON *o = cJSON_CreateObject();
    char key[40];
    for (int a = 0; o && a < r->n_alphas; a++)
        if (!dhf_json_add_exact(o, dhf_pck_alpha_key(r->alphas[a], key, sizeof key), v[a])) {
            cJSON_Delete(o);
            return NULL;
        }
    return o;
}

static cJSON *alpha_count_map(const dhf_pck_report *r, const long *v)
{
    cJSON *o = cJSON_CreateObject();
    char key[40];
    for (int a = 0; o && a < r->n_alphas; a++)
        if (!dhf_json_add_exact(o, dhf_pck_alpha_key(r->alphas[a], key, sizeof key), (double)v[a])) {
            cJSON_Delete(o);
            return NULL;
        }
    return o;
}

static cJSON *stats_json(const dhf_pck_report *r, const dhf_pck_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = dhf_json_add_exact(o, "n_pairs", (double)s->n_pairs) &&
              dhf_json_add_exact(o, "n_keypoints", (double)s->n_keypoints);
    for (int k = 0; ok && k < DHF_PCK_NKINDS; k++) {
        cJSON *kind = cJSON_AddObjectToObject(o, dhf_pck_kind_names[k]);
        ok = kind && cJSON_AddItemToObject(kind, "per_keypoint", alpha_map(r, s->per_keypoint[k])) &&
             cJSON_AddItemToObject(kind, "per_image", alpha_map(r, s->per_image[k])) &&
             cJSON_AddItemToObject(kind, "n_correct", alpha_count_map(r, s->n_correct[k]));
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *dhf_pck_report_to_json(const dhf_pck_report *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = true;
    cJSON *al = cJSON_AddArrayToObject(o, "alphas");
    ok = al != NULL;
    for (int a = 0; ok && a < r->n_alphas; a++)
        ok = cJSON_AddItemToArray(al, dhf_json_exact_number(r->alphas[a]));
    ok = ok && dhf_json_add_exact(o, "n_pairs", (double)r->overall.n_pairs) &&
         dhf_json_add_exact(o, "n_keypoints", (double)r->overall.n_keypoints) &&
         cJSON_AddItemToObject(o, "overall", stats_json(r, &r->overall));

    cJSON *pc = ok ? cJSON_AddObjectToObject(o, "per_category") : NULL;
    ok = pc != NULL;
    for (int c = 0; ok && c < r->n_categories; c++)
        if (r->per_category[c].n_keypoints > 0)
            ok = cJSON_AddItemToObject(pc, r->category_names[c], stats_json(r, &r->per_category[c]));

    cJSON *cm = ok ? cJSON_AddObjectToObject(o, "category_mean") : NULL;
    ok = cm != NULL;
    for (int k = 0; ok && k < DHF_PCK_NKINDS; k++) {
        cJSON *kind = cJSON_AddObjectToObject(cm, dhf_pck_kind_names[k]);
        ok = kind && cJSON_AddItemToObject(kind, "per_keypoint", alpha_map(r, r->category_mean[0][k])) &&
             cJSON_AddItemToObject(kind, "per_image", alpha_map(r, r->category_mean[1][k]));
    }

    cJSON *bd = ok ? cJSON_AddObjectToObject(o, "breakdowns") : NULL;
    ok = bd != NULL;
    for (int at = 0; ok && at < DHF_PCK_NATTRS; at++) {
        if (r->n_buckets[at] == 0)
            continue;
        cJSON *attr = cJSON_AddObjectToObject(bd, dhf_pck_attr_names[at]);
        ok = attr != NULL;
        for (int i = 0; ok && i < r->n_buckets[at]; i++) {
            char key[24];
            snprintf(key, sizeof key, "%d", r->buckets[at][i].value);
            ok = cJSON_AddItemToObject(attr, key, stats_json(r, &r->buckets[at][i].stats));
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        dhf_err_set("pck: out of memory building the results JSON");
        return NULL;
    }
    return o;
}

/* ---- Markdown -------------------------------------------------------------- */

static void md_pct(FILE *f, double v)
{
    if (isnan(v))
        fprintf(f, " – |");
    else
        fprintf(f, " %.2f |", 100.0 * v);
}

static void md_header(const dhf_pck_report *r, FILE *f, const char *first)
{
    char key[40];
    fprintf(f, "| %s | pairs | kps |", first);
    for (int k = 0; k < DHF_PCK_NKINDS; k++)
        for (int a = 0; a < r->n_alphas; a++)
            fprintf(f, " %s@%s |", dhf_pck_kind_names[k], dhf_pck_alpha_key(r->alphas[a], key, sizeof key));
    fprintf(f, "\n|---|---:|---:|");
    for (int i = 0; i < DHF_PCK_NKINDS * r->n_alphas; i++)
        fprintf(f, "---:|");
    fprintf(f, "\n");
}

static void md_row(const dhf_pck_report *r, FILE *f, const char *name, const dhf_pck_stats *s, int image)
{
    fprintf(f, "| %s | %ld | %ld |", name, s->n_pairs, s->n_keypoints);
    for (int k = 0; k < DHF_PCK_NKINDS; k++)
        for (int a = 0; a < r->n_alphas; a++)
            md_pct(f, image ? s->per_image[k][a] : s->per_keypoint[k][a]);
    fprintf(f, "\n");
}

int dhf_pck_report_write_md(const dhf_pck_report *r, double headline_alpha, FILE *f)
{
    char key[40];
    int h = dhf_pck_alpha_index(r, headline_alpha);
    if (h < 0)
        h = 0;
    const char *hk = dhf_pck_alpha_key(r->alphas[h], key, sizeof key);
    fprintf(f, "## Headline\n\n| PCK@%s (pooled per keypoint) | img | bbox |\n|---|---:|---:|\n"
               "| all (%ld pairs, %ld keypoints) |",
            hk, r->overall.n_pairs, r->overall.n_keypoints);
    md_pct(f, r->overall.per_keypoint[DHF_PCK_IMG][h]);
    md_pct(f, r->overall.per_keypoint[DHF_PCK_BBOX][h]);
    fprintf(f, "\n\nValues are percentages. *Pooled per keypoint* = correct keypoints / all "
               "keypoints (the paper's number); *per image* = mean over pairs of each pair's PCK.\n");

    for (int image = 0; image <= 1; image++) {
        fprintf(f, "\n## Per category — %s\n\n", image ? "mean per image" : "pooled per keypoint");
        md_header(r, f, "category");
        for (int c = 0; c < r->n_categories; c++)
            if (r->per_category[c].n_keypoints > 0)
                md_row(r, f, r->category_names[c], &r->per_category[c], image);
        md_row(r, f, "**all**", &r->overall, image);
        fprintf(f, "| *mean of categories* | | |");
        for (int k = 0; k < DHF_PCK_NKINDS; k++)
            for (int a = 0; a < r->n_alphas; a++)
                md_pct(f, r->category_mean[image][k][a]);
        fprintf(f, "\n");
    }

    for (int at = 0; at < DHF_PCK_NATTRS; at++) {
        if (r->n_buckets[at] == 0)
            continue;
        fprintf(f, "\n## By %s — pooled per keypoint\n\n", dhf_pck_attr_names[at]);
        md_header(r, f, dhf_pck_attr_names[at]);
        for (int i = 0; i < r->n_buckets[at]; i++) {
            char name[24];
            snprintf(name, sizeof name, "%d", r->buckets[at][i].value);
            md_row(r, f, name, &r->buckets[at][i].stats, 0);
        }
    }
    return ferror(f) ? dhf_err_set("pck: write error in the Markdown report") : 0;
}
