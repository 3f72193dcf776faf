/* parity.c — tolerances.json lookup and tensor-vs-reference comparison. */
#include "common/parity.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"

typedef struct {
    char *file;
    char *pattern;      /* as written in the JSON (group name) */
    regex_t re;
    double rtol, atol;
} tol_pattern;

typedef struct {
    char *file;
    double rtol, atol;
} tol_file;

struct dhf_tolerances {
    double rtol, atol;
    tol_file *files;
    int n_files;
    tol_pattern *patterns;
    int n_patterns;
};

void dhf_tolerances_free(dhf_tolerances *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_files; i++)
        free(t->files[i].file);
    for (int i = 0; i < t->n_patterns; i++) {
        free(t->patterns[i].file);
        free(t->patterns[i].pattern);
        regfree(&t->patterns[i].re);
    }
    free(t->files);
    free(t->patterns);
    free(t);
}

static int read_pair(const cJSON *o, const char *origin, const char *what, double *rtol,
                     double *atol)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rtol");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "atol");
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(a))
        return dhf_err_set("%s: %s: expected numbers 'rtol' and 'atol'", origin, what);
    *rtol = r->valuedouble;
    *atol = a->valuedouble;
    return 0;
}

/* Python's \d is not POSIX: rewrite it as [0-9]. */
static void to_posix(const char *src, char *dst, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 6 < n; i++) {
        if (src[i] == '\\' && src[i + 1] == 'd') {
            memcpy(dst + j, "[0-9]", 5);
            j += 5;
            i++;
        } else {
            dst[j++] = src[i];
        }
    }
    dst[j] = '\0';
}

int dhf_tolerances_load(const char *path, dhf_tolerances **out)
{
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return dhf_err_set("%s: not valid JSON", path);
    dhf_tolerances *t = calloc(1, sizeof *t);
    int rc = -1;
    if (!t) {
        dhf_err_set("out of memory");
        goto out;
    }
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(root, "default");
    if (!def || read_pair(def, path, "default", &t->rtol, &t->atol) != 0) {
        if (!def)
            dhf_err_set("%s: missing 'default'", path);
        goto out;
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    const cJSON *e;
    int nf = cJSON_IsObject(files) ? cJSON_GetArraySize(files) : 0;
    t->files = calloc((size_t)(nf ? nf : 1), sizeof *t->files);
    if (!t->files) {
        dhf_err_set("out of memory");
        goto out;
    }
    if (nf)
        cJSON_ArrayForEach(e, files)
        {
            tol_file *f = &t->files[t->n_files];
            if (read_pair(e, path, e->string, &f->rtol, &f->atol) != 0)
                goto out;
            f->file = strdup(e->string);
            t->n_files++;
        }
    const cJSON *pats = cJSON_GetObjectItemCaseSensitive(root, "patterns");
    int np = 0;
    const cJSON *pf;
    if (cJSON_IsObject(pats))
        cJSON_ArrayForEach(pf, pats) np += cJSON_GetArraySize(pf);
    t->patterns = calloc((size_t)(np ? np : 1), sizeof *t->patterns);
    if (!t->patterns) {
        dhf_err_set("out of memory");
        goto out;
    }
    if (np)
        cJSON_ArrayForEach(pf, pats)
        {
            cJSON_ArrayForEach(e, pf)
            {
                tol_pattern *p = &t->patterns[t->n_patterns];
                char posix[512];
                if (read_pair(e, path, e->string, &p->rtol, &p->atol) != 0)
                    goto out;
                to_posix(e->string, posix, sizeof posix);
                if (regcomp(&p->re, posix, REG_EXTENDED | REG_NOSUB) != 0) {
                    dhf_err_set("%s: pattern '%s' is not a valid regex", path, e->string);
                    goto out;
                }
                p->file = strdup(pf->string);
                p->pattern = strdup(e->string);
                t->n_patterns++;
            }
        }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc != 0) {
        dhf_tolerances_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void dhf_tolerances_lookup(const dhf_tolerances *t, const char *file, const char *tensor,
                           double *rtol, double *atol, const char **group)
{
    for (int i = 0; i < t->n_patterns; i++) {
        const tol_pattern *p = &t->patterns[i];
        if (strcmp(p->file, file) == 0 && regexec(&p->re, tensor, 0, NULL, 0) == 0) {
            *rtol = p->rtol;
            *atol = p->atol;
            *group = p->pattern;
            return;
        }
    }
    for (int i = 0; i < t->n_files; i++)
        if (strcmp(t->files[i].file, file) == 0) {
            *rtol = t->files[i].rtol;
            *atol = t->files[i].atol;
            *group = t->files[i].file;
            return;
        }
    *rtol = t->rtol;
    *atol = t->atol;
    *group = "<default>";
}

void dhf_parity_init(dhf_parity_report *r, const dhf_tolerances *tol, const char *file_stem)
{
    memset(r, 0, sizeof *r);
    r->tol = tol;
    r->tol_factor = 1.0;
    snprintf(r->file, sizeof r->file, "%s", file_stem);
}

static dhf_parity_group *group_of(dhf_parity_report *r, const char *name)
{
    for (int i = 0; i < r->n_groups; i++)
        if (strcmp(r->groups[i].group, name) == 0)
            return &r->groups[i];
    if (r->n_groups == DHF_PARITY_MAX_GROUPS)
        return &r->groups[DHF_PARITY_MAX_GROUPS - 1];
    dhf_parity_group *g = &r->groups[r->n_groups++];
    snprintf(g->group, sizeof g->group, "%s", name);
    return g;
}

static void record(dhf_parity_report *r, const char *group, const char *tensor, double ratio,
                   double abs_err, bool fail)
{
    dhf_parity_group *g = group_of(r, group);
    g->n++;
    r->n_checked++;
    if (fail) {
        g->n_fail++;
        r->n_fail++;
    }
    if (ratio > g->worst_ratio || isnan(ratio) || g->n == 1) {
        g->worst_ratio = ratio;
        g->worst_abs = abs_err;
        snprintf(g->worst_tensor, sizeof g->worst_tensor, "%s", tensor);
    }
}

int dhf_parity_check(dhf_parity_report *r, dhf_tensor cand, const dhf_st_file *ref,
                     const char *ref_name, const char *tol_name)
{
    double rtol, atol;
    const char *group;
    dhf_tolerances_lookup(r->tol, r->file, tol_name, &rtol, &atol, &group);
    const dhf_st_info *info = dhf_st_find(ref, ref_name);
    if (!info) {
        record(r, group, tol_name, INFINITY, INFINITY, true);
        return dhf_err_set("%s: missing reference tensor '%s'", dhf_st_path(ref), ref_name);
    }
    int64_t shape[DHF_MAX_DIMS];
    int nd = 0;
    bool same = cand && dhf_shape(cand, shape, &nd) == DHF_OK && nd == info->ndim;
    for (int i = 0; same && i < nd; i++)
        same = shape[i] == info->shape[i];
    if (!same) {
        char d[128] = "(none)";
        if (cand)
            dhf_describe(cand, d, sizeof d);
        record(r, group, tol_name, INFINITY, INFINITY, true);
        return dhf_err_set("%s: '%s': candidate shape %s differs from the reference",
                           dhf_st_path(ref), ref_name, d);
    }
    size_t n = (size_t)info->numel;
    float *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return dhf_err_set("out of memory");
    }
    int rc = 0;
    if (dhf_st_read_f32(ref, ref_name, a, n) != 0) {
        rc = -1;
        goto out;
    }
    if (dhf_to_buffer(cand, DHF_F32, b, n * sizeof *b) != DHF_OK) {
        rc = dhf_err_set("'%s': %s", ref_name, dhf_last_error());
        goto out;
    }
    double max_ref = 0, max_d = 0;
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)b[i] - (double)a[i]);
        if (isnan(d))
            nan = true;
        if (d > max_d)
            max_d = d;
        if (fabs((double)a[i]) > max_ref)
            max_ref = fabs((double)a[i]);
    }
    double allowed = atol + rtol * max_ref;
    double ratio = nan ? INFINITY : max_d / allowed;   /* in units of the tolerance file's */
    bool fail = nan || max_d > r->tol_factor * allowed;
    record(r, group, tol_name, ratio, nan ? NAN : max_d, fail);
    rc = fail ? 1 : 0;
out:
    free(a);
    free(b);
    return rc;
}

void dhf_parity_print(const dhf_parity_report *r, FILE *f)
{
    fprintf(f, "%s: %d tensors checked, %d failing\n", r->file, r->n_checked, r->n_fail);
    for (int i = 0; i < r->n_groups; i++) {
        const dhf_parity_group *g = &r->groups[i];
        fprintf(f, "  %-28s n=%-3d fail=%-3d worst err/tol=%.3g (max|d|=%.3g, %s)\n",
                g->group, g->n, g->n_fail, g->worst_ratio, g->worst_abs, g->worst_tensor);
    }
}
