/* table1_report.c — dhf table1's report, made anew from the finished evaluations on
 * every call (it reads files only): table1.md (the table beside the paper's figures,
 * the paper's stated relations judged on this run), table1.json (every number, each
 * evaluation's protocol, the pruned map), per_category/<dataset>.{md,csv}, the
 * networks' heatmaps, and 95% bootstrap intervals over pairs for every PCK and
 * every relation (eval/bootstrap.h). */
#include "experiment/table1_internal.h"

#include "core/error.h"
#include "core/fsutil.h"
#include "eval/bootstrap.h"
#include "eval/pck.h"
#include "eval/predictions.h"
#include "train/heatmap.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALPHA 0.1
#define LEVEL 0.95

static const int col_dataset[T1_NCOLS] = {T1_SPAIR, T1_SPAIR, T1_CUB};
static const int col_kind[T1_NCOLS] = {DHF_PCK_IMG, DHF_PCK_BBOX, DHF_PCK_IMG};
static const char *const col_keys[T1_NCOLS] = {"spair_img", "spair_bbox", "cub_img"};

/* One finished evaluation, loaded. */
typedef struct {
    bool have;
    dhf_predictions pred;
    cJSON *results;               /* results.json */
    dhf_boot_pair *pairs[DHF_PCK_NKINDS];
    dhf_boot_interval ci[DHF_PCK_NKINDS];
} t1_result;

typedef struct {
    const t1_plan *p;
    int n_rows;
    t1_result (*res)[T1_NDATASETS];   /* [row][dataset] */
} report;

static int load_result(const t1_plan *p, const t1_stage *s, t1_result *r)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/predictions.jsonl", s->output);
    if (dhf_predictions_load(path, &r->pred) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/results.json", s->output);
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    r->results = cJSON_Parse(text);
    free(text);
    if (!r->results)
        return dhf_err_set("%s: not valid JSON", path);
    for (int k = 0; k < DHF_PCK_NKINDS; k++) {
        r->pairs[k] = calloc((size_t)r->pred.n_pairs, sizeof *r->pairs[k]);
        if (!r->pairs[k])
            return dhf_err_set("out of memory");
        dhf_boot_pairs_from_kps(r->pred.kps, r->pred.n_kps, r->pred.n_pairs, k, ALPHA,
                                r->pairs[k]);
        if (dhf_bootstrap_pck(r->pairs[k], r->pred.n_pairs, p->base->t1_bootstrap, LEVEL,
                              (uint64_t)p->base->t1_bootstrap_seed, &r->ci[k]) != 0)
            return dhf_err_wrap("%s", path);
    }
    r->have = true;
    return 0;
}

static void free_result(t1_result *r)
{
    dhf_predictions_free(&r->pred);
    cJSON_Delete(r->results);
    for (int k = 0; k < DHF_PCK_NKINDS; k++)
        free(r->pairs[k]);
}

static int row_index(const char *id)
{
    int i = 0;
    for (const t1_row *r = t1_rows; r->id; r++, i++)
        if (strcmp(r->id, id) == 0)
            return i;
    return -1;
}

/* Both methods judged on the same pairs and keypoints, in the same order. */
static bool same_pairs(const dhf_predictions *a, const dhf_predictions *b)
{
    if (a->n_pairs != b->n_pairs || a->n_kps != b->n_kps)
        return false;
    for (size_t k = 0; k < a->n_kps; k++)
        if (a->kps[k].pair != b->kps[k].pair || a->kps[k].gt[0] != b->kps[k].gt[0] ||
            a->kps[k].gt[1] != b->kps[k].gt[1])
            return false;
    return true;
}

/* ---- relations ------------------------------------------------------------ */

typedef struct {
    bool judged;
    const char *why;          /* when not judged */
    dhf_boot_interval ci;     /* difference a - b, in [0, 1] units */
    double frac_le0;
    bool holds, paper_inside;
} t1_judgement;

static void judge(const report *R, const t1_relation *rel, t1_judgement *j)
{
    memset(j, 0, sizeof *j);
    int a = row_index(rel->a), b = row_index(rel->b);
    const t1_result *ra = &R->res[a][T1_SPAIR], *rb = &R->res[b][T1_SPAIR];
    if (!ra->have || !rb->have) {
        j->why = "a row was not run";
        return;
    }
    if (!same_pairs(&ra->pred, &rb->pred)) {
        j->why = "the two rows were not evaluated on the same pairs";
        return;
    }
    const dhf_config *c = R->p->base;
    if (dhf_bootstrap_pck_diff(ra->pairs[DHF_PCK_IMG], rb->pairs[DHF_PCK_IMG], ra->pred.n_pairs,
                               c->t1_bootstrap, LEVEL, (uint64_t)c->t1_bootstrap_seed, &j->ci,
                               &j->frac_le0) != 0) {
        j->why = "no keypoints";
        dhf_err_clear();
        return;
    }
    j->judged = true;
    j->holds = t1_relation_holds(rel, 100.0 * j->ci.estimate, c->t1_approx_points);
    /* for "≈ d": is the paper's d a plausible value of this run's difference? */
    j->paper_inside = rel->kind == T1_REL_APPROX && 100.0 * j->ci.lo <= rel->points &&
                      rel->points <= 100.0 * j->ci.hi;
}

/* ---- the pruned map: (l*, s*) against the heatmap CSV's argmax -------------- */

typedef struct {
    bool have;
    int layer;                /* 1-based */
    long long label, unet_t;  /* save_timestep label and UNet timestep */
    char module[128];
    bool csv_checked, csv_agrees;
    int csv_layer;
    long long csv_label;      /* the cache's save_timestep of the argmax column */
    char csv_path[4400];
} t1_pruned;

/* The argmax of a heatmap CSV ("layer,<labels>" then "l,v,v,..."): its row and column. */
static int csv_argmax(const char *path, int *layer, int *col)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return dhf_err_set("%s: cannot open", path);
    char line[8192];
    double best = -INFINITY;
    int row = 0;
    *layer = *col = -1;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return dhf_err_set("%s: empty", path);
    }
    while (fgets(line, sizeof line, f)) {
        row++;
        char *s = strchr(line, ',');
        for (int j = 0; s; j++) {
            double v = strtod(s + 1, NULL);
            if (v > best) {
                best = v;
                *layer = row;
                *col = j;
            }
            s = strchr(s + 1, ',');
        }
    }
    fclose(f);
    return *layer > 0 ? 0 : dhf_err_set("%s: no values", path);
}

static void find_pruned(const report *R, t1_pruned *pm)
{
    memset(pm, 0, sizeof *pm);
    const t1_result *r = &R->res[row_index("sd-layer-pruned")][T1_SPAIR];
    if (!r->have)
        return;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->results, "protocol"), "descriptor_source");
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(ds, "layer");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(ds, "save_timestep_label");
    const cJSON *unet = cJSON_GetObjectItemCaseSensitive(ds, "unet_timestep");
    const cJSON *module = cJSON_GetObjectItemCaseSensitive(ds, "module");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ds, "extraction"), "save_timestep");
    if (!cJSON_IsNumber(layer) || !cJSON_IsNumber(label))
        return;
    pm->have = true;
    pm->layer = layer->valueint;
    pm->label = (long long)label->valuedouble;
    pm->unet_t = cJSON_IsNumber(unet) ? (long long)unet->valuedouble : -1;
    snprintf(pm->module, sizeof pm->module, "%s", cJSON_IsString(module) ? module->valuestring : "?");
    /* the heatmap CSV of the network the row reads: column j is cache step j */
    snprintf(pm->csv_path, sizeof pm->csv_path, "%s/heatmaps/ours.csv", R->p->out_dir);
    int l = 0, j = 0;
    if (!dhf_path_exists(pm->csv_path) || csv_argmax(pm->csv_path, &l, &j) != 0 ||
        !cJSON_IsArray(steps) || j >= cJSON_GetArraySize(steps)) {
        dhf_err_clear();
        return;
    }
    pm->csv_checked = true;
    pm->csv_layer = l;
    pm->csv_label = (long long)cJSON_GetArrayItem(steps, j)->valuedouble;
    pm->csv_agrees = l == pm->layer && pm->csv_label == pm->label;
}

/* ---- output ------------------------------------------------------------------ */

static void fmt_cell(const t1_result *r, int kind, char *out, size_t n)
{
    if (!r->have)
        snprintf(out, n, "–");
    else
        snprintf(out, n, "%.2f [%.2f, %.2f]", 100 * r->ci[kind].estimate, 100 * r->ci[kind].lo,
                 100 * r->ci[kind].hi);
}

static void fmt_paper(double v, char *out, size_t n)
{
    if (isnan(v))
        out[0] = '\0';
    else
        snprintf(out, n, "%.2f", v);
}

/* "12 × S" with S the configured number of saved steps */
static void row_shape(const dhf_config *c, const t1_row *r, char *out, size_t n)
{
    const char *S = strchr(r->shape, 'S');
    if (S)
        snprintf(out, n, "%.*s%d", (int)(S - r->shape), r->shape, c->save_timestep.n);
    else
        snprintf(out, n, "%s", r->shape);
}

static const char *rel_symbol(t1_rel_kind k)
{
    return k == T1_REL_APPROX ? "≈" : k == T1_REL_AT_LEAST ? "≥" : ">";
}

static const char *row_note(const report *R, const t1_row *r, int i)
{
    const char *why = t1_row_unavailable(R->p->base, r);
    if (why)
        return why;
    if (!R->res[i][T1_SPAIR].have)
        return "not run yet (see the plan; --rows may leave it out)";
    return "";
}

static void write_md(const report *R, const t1_pruned *pm, const t1_judgement *jd, FILE *f)
{
    const dhf_config *c = R->p->base;
    const t1_result *any = NULL;
    for (int i = 0; i < R->n_rows && !any; i++)
        if (R->res[i][T1_SPAIR].have)
            any = &R->res[i][T1_SPAIR];
    fprintf(f, "# Table 1: Diffusion Hyperfeatures and its ablations\n\n");
    fprintf(f, "PCK@0.1 pooled per keypoint, in points; brackets: 95%% bootstrap interval over "
               "pairs (%d resamples, seed %lld). ",
            c->t1_bootstrap, (long long)c->t1_bootstrap_seed);
    if (any) {
        fprintf(f, "SPair-71k test: %d pairs, %zu keypoints (", any->pred.n_pairs, any->pred.n_kps);
        if (strcmp(c->t1_test_pairs, "full") != 0)
            fprintf(f, "pair list %s", c->t1_test_pairs);
        else if (c->pairs_per_category > 0)
            fprintf(f, "%d per category of the test split", c->pairs_per_category);
        else
            fprintf(f, "the whole test split");
        fprintf(f, "). ");
    }
    for (int i = 0; i < R->n_rows; i++)
        if (R->res[i][T1_CUB].have) {
            fprintf(f, "CUB-200-2011 test: %d pairs, %zu keypoints (", R->res[i][T1_CUB].pred.n_pairs,
                    R->res[i][T1_CUB].pred.n_kps);
            if (c->t1_cub_pairs_per_category > 0)
                fprintf(f, "%d per class).", c->t1_cub_pairs_per_category);
            else
                fprintf(f, "every pair).");
            break;
        }
    fprintf(f, "\n\n| row | layers × steps | SPair img | SPair bbox | CUB img | paper SPair img / "
               "bbox / CUB | Δ vs paper (img) | note |\n|---|---|---|---|---|---|---|---|\n");
    int i = 0;
    for (const t1_row *r = t1_rows; r->id; r++, i++) {
        char cells[T1_NCOLS][96], paper[T1_NCOLS][32], delta[32] = "";
        for (int k = 0; k < T1_NCOLS; k++) {
            fmt_cell(&R->res[i][col_dataset[k]], col_kind[k], cells[k], sizeof cells[k]);
            fmt_paper(r->paper[k], paper[k], sizeof paper[k]);
        }
        if (!isnan(r->paper[0]) && R->res[i][T1_SPAIR].have)
            snprintf(delta, sizeof delta, "%+.2f",
                     100 * R->res[i][T1_SPAIR].ci[DHF_PCK_IMG].estimate - r->paper[0]);
        char paper_all[128] = "";
        if (!isnan(r->paper[0]))
            snprintf(paper_all, sizeof paper_all, "%s / %s / %s", paper[0], paper[1],
                     paper[2][0] ? paper[2] : "–");
        char shape[32];
        row_shape(c, r, shape, sizeof shape);
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->name, shape, cells[0],
                cells[1], cells[2], paper_all, delta, row_note(R, r, i));
    }
    fprintf(f, "\n## The paper's stated relations, on this run (SPair PCK@0.1 img)\n\n"
               "\"≈ d\" holds when the difference is within %g points of d "
               "(table1.approx_points). The interval is a paired bootstrap: each resample "
               "draws the same pairs for both rows.\n\n"
               "| relation | paper | this run: difference [95%% interval] | resamples ≤ 0 | holds | "
               "paper's d inside the interval |\n|---|---|---|---|---|---|\n",
            c->t1_approx_points);
    int k = 0;
    for (const t1_relation *rel = t1_relations; rel->a; rel++, k++) {
        const t1_judgement *j = &jd[k];
        if (!j->judged) {
            fprintf(f, "| %s | %s %g | – | – | not judged: %s | – |\n", rel->text,
                    rel_symbol(rel->kind), rel->points, j->why);
            continue;
        }
        fprintf(f, "| %s | %s %g | %+.2f [%+.2f, %+.2f] | %.3f | %s | %s |\n", rel->text,
                rel_symbol(rel->kind), rel->points, 100 * j->ci.estimate, 100 * j->ci.lo,
                100 * j->ci.hi, j->frac_le0, j->holds ? "holds" : "does not hold",
                rel->kind != T1_REL_APPROX ? "–" : j->paper_inside ? "yes" : "no");
    }
    fprintf(f, "\n## The pruned map (l\\*, s\\*)\n\n");
    if (!pm->have) {
        fprintf(f, "SD-Layer-Pruned was not run.\n");
    } else {
        fprintf(f, "The largest mixing weight of Ours: layer %d (%s), save_timestep %lld (UNet "
                   "timestep %lld). SD-Layer-Pruned is `dhf eval --provider layer:%d@%lld`; "
                   "Ours-Pruned is `--provider bottleneck:%d@%lld --checkpoint` of Ours.",
                pm->layer, pm->module, pm->label, pm->unet_t, pm->layer, pm->label, pm->layer,
                pm->label);
        if (pm->csv_checked)
            fprintf(f, " The argmax of %s is layer %d, save_timestep %lld: %s.\n", pm->csv_path,
                    pm->csv_layer, pm->csv_label, pm->csv_agrees ? "the same map" : "A DIFFERENT MAP");
        else
            fprintf(f, "\n");
    }
    fprintf(f, "\nFiles: table1.json (every number and each evaluation's protocol), "
               "per_category/, heatmaps/, eval/<row>-<dataset>/ (results, predictions), "
               "runs/, features/, stages/ (what is done).\n");
}

static cJSON *interval_json(const dhf_boot_interval *ci)
{
    cJSON *o = cJSON_CreateObject();
    dhf_json_add_exact(o, "pck", ci->estimate);
    dhf_json_add_exact(o, "lo", ci->lo);
    dhf_json_add_exact(o, "hi", ci->hi);
    return o;
}

static cJSON *build_json(const report *R, const t1_pruned *pm, const t1_judgement *jd)
{
    const dhf_config *c = R->p->base;
    cJSON *doc = cJSON_CreateObject();
    char *cfg = dhf_config_to_json(c);
    cJSON_AddItemToObject(doc, "config", cfg ? cJSON_Parse(cfg) : cJSON_CreateNull());
    free(cfg);
    cJSON_AddStringToObject(doc, "out_dir", R->p->out_dir);
    cJSON *bs = cJSON_AddObjectToObject(doc, "bootstrap");
    cJSON_AddNumberToObject(bs, "resamples", c->t1_bootstrap);
    cJSON_AddNumberToObject(bs, "seed", (double)c->t1_bootstrap_seed);
    cJSON_AddNumberToObject(bs, "level", LEVEL);
    cJSON_AddNumberToObject(bs, "alpha", ALPHA);
    cJSON_AddStringToObject(bs, "unit", "pairs resampled with replacement; PCK pooled per keypoint");
    cJSON *rows = cJSON_AddArrayToObject(doc, "rows");
    int i = 0;
    for (const t1_row *r = t1_rows; r->id; r++, i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(rows, o);
        cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddStringToObject(o, "name", r->name);
        char shape[32];
        row_shape(c, r, shape, sizeof shape);
        cJSON_AddStringToObject(o, "layers_x_steps", shape);
        if (r->provider)
            cJSON_AddStringToObject(o, "provider", r->provider);
        if (r->network)
            cJSON_AddStringToObject(o, "network", r->network);
        const char *note = row_note(R, r, i);
        if (note[0])
            cJSON_AddStringToObject(o, "note", note);
        cJSON *paper = cJSON_AddObjectToObject(o, "paper");
        for (int k = 0; k < T1_NCOLS; k++)
            dhf_json_add_exact(paper, col_keys[k], r->paper[k]);
        cJSON *res = cJSON_AddObjectToObject(o, "results");
        for (int d = 0; d < T1_NDATASETS; d++) {
            const t1_result *x = &R->res[i][d];
            if (!x->have)
                continue;
            cJSON *e = cJSON_AddObjectToObject(res, t1_dataset_names[d]);
            for (int k = 0; k < DHF_PCK_NKINDS; k++)
                cJSON_AddItemToObject(e, dhf_pck_kind_names[k], interval_json(&x->ci[k]));
            cJSON_AddNumberToObject(e, "n_pairs", x->pred.n_pairs);
            cJSON_AddNumberToObject(e, "n_keypoints", (double)x->pred.n_kps);
            const t1_stage *s = t1_plan_eval(R->p, r, d);
            if (s)
                cJSON_AddStringToObject(e, "eval_dir", s->output);
            const cJSON *prot = cJSON_GetObjectItemCaseSensitive(x->results, "protocol");
            if (prot)
                cJSON_AddItemToObject(e, "protocol", cJSON_Duplicate(prot, 1));
        }
    }
    cJSON *rels = cJSON_AddArrayToObject(doc, "relations");
    int k = 0;
    for (const t1_relation *rel = t1_relations; rel->a; rel++, k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(rels, o);
        cJSON_AddStringToObject(o, "text", rel->text);
        cJSON_AddStringToObject(o, "a", rel->a);
        cJSON_AddStringToObject(o, "b", rel->b);
        cJSON_AddStringToObject(o, "relation", rel_symbol(rel->kind));
        cJSON_AddNumberToObject(o, "paper_points", rel->points);
        cJSON_AddStringToObject(o, "metric", "spair_img");
        if (!jd[k].judged) {
            cJSON_AddStringToObject(o, "not_judged", jd[k].why);
            continue;
        }
        cJSON_AddItemToObject(o, "difference", interval_json(&jd[k].ci));
        dhf_json_add_exact(o, "share_of_resamples_le0", jd[k].frac_le0);
        cJSON_AddBoolToObject(o, "holds", jd[k].holds);
        if (rel->kind == T1_REL_APPROX)
            cJSON_AddBoolToObject(o, "paper_inside_interval", jd[k].paper_inside);
    }
    cJSON_AddNumberToObject(doc, "approx_points", c->t1_approx_points);
    if (pm->have) {
        cJSON *o = cJSON_AddObjectToObject(doc, "pruned_map");
        cJSON_AddNumberToObject(o, "layer", pm->layer);
        cJSON_AddStringToObject(o, "module", pm->module);
        cJSON_AddNumberToObject(o, "save_timestep", (double)pm->label);
        cJSON_AddNumberToObject(o, "unet_timestep", (double)pm->unet_t);
        if (pm->csv_checked) {
            cJSON *h = cJSON_AddObjectToObject(o, "heatmap_csv_argmax");
            cJSON_AddStringToObject(h, "csv", pm->csv_path);
            cJSON_AddNumberToObject(h, "layer", pm->csv_layer);
            cJSON_AddNumberToObject(h, "save_timestep", (double)pm->csv_label);
            cJSON_AddBoolToObject(h, "agrees", pm->csv_agrees);
        }
    }
    return doc;
}

/* per_category/<dataset>.md and .csv: PCK@0.1 per category and row. */
static int write_per_category(const report *R, int d)
{
    /* the categories of the first row that has the dataset (all share the pairs) */
    const t1_result *first = NULL;
    for (int i = 0; i < R->n_rows && !first; i++)
        if (R->res[i][d].have)
            first = &R->res[i][d];
    if (!first)
        return 0;
    int nk = d == T1_CUB ? 1 : DHF_PCK_NKINDS;
    int nc = first->pred.n_categories;
    double alpha = ALPHA;
    /* values[row][kind][category], NAN where a row lacks it */
    double *v = malloc((size_t)R->n_rows * DHF_PCK_NKINDS * (size_t)(nc + 1) * sizeof *v);
    if (!v)
        return dhf_err_set("out of memory");
    for (int i = 0; i < R->n_rows; i++)
        for (int k = 0; k < DHF_PCK_NKINDS; k++)
            for (int c = 0; c <= nc; c++) {
                size_t at = ((size_t)i * DHF_PCK_NKINDS + (size_t)k) * (size_t)(nc + 1) + (size_t)c;
                v[at] = NAN;
            }
    for (int i = 0; i < R->n_rows; i++) {
        const t1_result *x = &R->res[i][d];
        if (!x->have || x->pred.n_categories != nc)
            continue;
        dhf_pck_report rep;
        if (dhf_pck_compute(x->pred.kps, x->pred.n_kps, x->pred.n_pairs,
                            (const char *const *)x->pred.categories, nc, &alpha, 1, &rep) != 0) {
            free(v);
            return -1;
        }
        for (int k = 0; k < DHF_PCK_NKINDS; k++) {
            size_t base = ((size_t)i * DHF_PCK_NKINDS + (size_t)k) * (size_t)(nc + 1);
            for (int c = 0; c < nc; c++)
                v[base + (size_t)c] = rep.per_category[c].per_keypoint[k][0];
            v[base + (size_t)nc] = rep.category_mean[0][k][0];
        }
        dhf_pck_report_free(&rep);
    }
    char dir[4200], md_path[4400], csv_path[4400];
    if (dhf_path_join(dir, sizeof dir, R->p->out_dir, "per_category") != 0 || dhf_mkdir_p(dir) != 0) {
        free(v);
        return -1;
    }
    snprintf(md_path, sizeof md_path, "%s/%s.md", dir, t1_dataset_names[d]);
    snprintf(csv_path, sizeof csv_path, "%s/%s.csv", dir, t1_dataset_names[d]);
    char *md = NULL, *csv = NULL;
    size_t md_len = 0, csv_len = 0;
    FILE *fm = open_memstream(&md, &md_len), *fc = open_memstream(&csv, &csv_len);
    if (!fm || !fc) {
        if (fm)
            fclose(fm);
        if (fc)
            fclose(fc);
        free(md);
        free(csv);
        free(v);
        return dhf_err_set("out of memory");
    }
    fprintf(fm, "# Per-category PCK@0.1 on %s (pooled per keypoint within each category)\n\n",
            d == T1_CUB ? "CUB-200-2011" : "SPair-71k");
    fprintf(fc, "category");
    fprintf(fm, "| category |");
    for (int i = 0; i < R->n_rows; i++) {
        if (!R->res[i][d].have)
            continue;
        for (int k = 0; k < nk; k++) {
            fprintf(fm, " %s %s |", t1_rows[i].name, dhf_pck_kind_names[k]);
            fprintf(fc, ",%s %s", t1_rows[i].id, dhf_pck_kind_names[k]);
        }
    }
    fprintf(fm, "\n|---|");
    fprintf(fc, "\n");
    for (int i = 0; i < R->n_rows; i++)
        for (int k = 0; R->res[i][d].have && k < nk; k++)
            fprintf(fm, "---:|");
    fprintf(fm, "\n");
    for (int c = 0; c <= nc; c++) {
        const char *name = c < nc ? first->pred.categories[c] : "mean over categories";
        fprintf(fm, "| %s |", name);
        fprintf(fc, "%s", c < nc ? name : "mean");
        for (int i = 0; i < R->n_rows; i++)
            for (int k = 0; R->res[i][d].have && k < nk; k++) {
                double x = v[((size_t)i * DHF_PCK_NKINDS + (size_t)k) * (size_t)(nc + 1) + (size_t)c];
                if (isnan(x)) {
                    fprintf(fm, " – |");
                    fprintf(fc, ",");
                } else {
                    fprintf(fm, " %.2f |", 100 * x);
                    fprintf(fc, ",%.17g", 100 * x);
                }
            }
        fprintf(fm, "\n");
        fprintf(fc, "\n");
    }
    fclose(fm);
    fclose(fc);
    int rc = dhf_write_file_atomic(md_path, md, md_len) != 0 ||
                     dhf_write_file_atomic(csv_path, csv, csv_len) != 0
                 ? -1
                 : 0;
    free(md);
    free(csv);
    free(v);
    return rc;
}

/* heatmaps/<network>.{png,svg,csv} of every trained network. */
static int write_heatmaps(const t1_plan *p)
{
    char dir[4200];
    if (dhf_path_join(dir, sizeof dir, p->out_dir, "heatmaps") != 0)
        return -1;
    for (int i = 0; i < p->n; i++) {
        const t1_stage *s = &p->stages[i];
        if (s->kind != T1_TRAIN || s->state != T1_DONE)
            continue;
        char ckpt[4400], png[5400], title[256];
        snprintf(ckpt, sizeof ckpt, "%s/%s.safetensors", s->output, p->base->t1_checkpoint);
        snprintf(png, sizeof png, "%s/%s.png", dir, s->cfg.run_name);
        snprintf(title, sizeof title, "Mixing weights: %s", s->what + strlen("train "));
        if (dhf_mkdir_p(dir) != 0 || dhf_heatmap_from_checkpoint(ckpt, title, png, NULL, NULL) != 0)
            return dhf_err_wrap("heatmap of %s", ckpt);
    }
    return 0;
}

int t1_report(const t1_plan *p)
{
    report R = {.p = p};
    for (const t1_row *r = t1_rows; r->id; r++)
        R.n_rows++;
    R.res = calloc((size_t)R.n_rows, sizeof *R.res);
    int nrel = 0;
    for (const t1_relation *rel = t1_relations; rel->a; rel++)
        nrel++;
    t1_judgement *jd = calloc((size_t)nrel, sizeof *jd);
    char *md = NULL;
    size_t md_len = 0;
    cJSON *doc = NULL;
    int rc = -1;
    if (!R.res || !jd) {
        dhf_err_set("out of memory");
        goto done;
    }
    for (int i = 0; i < R.n_rows; i++)
        for (int d = 0; d < T1_NDATASETS; d++) {
            const t1_stage *s = t1_plan_eval(p, &t1_rows[i], d);
            if (s && s->state == T1_DONE && load_result(p, s, &R.res[i][d]) != 0)
                goto done;
        }
    if (write_heatmaps(p) != 0)
        goto done;
    for (int k = 0; k < nrel; k++)
        judge(&R, &t1_relations[k], &jd[k]);
    t1_pruned pm;
    find_pruned(&R, &pm);

    FILE *f = open_memstream(&md, &md_len);
    if (!f) {
        dhf_err_set("out of memory");
        goto done;
    }
    write_md(&R, &pm, jd, f);
    fclose(f);
    doc = build_json(&R, &pm, jd);
    char *js = doc ? cJSON_Print(doc) : NULL;
    char md_path[4200], js_path[4200];
    if (!js || dhf_path_join(md_path, sizeof md_path, p->out_dir, "table1.md") != 0 ||
        dhf_path_join(js_path, sizeof js_path, p->out_dir, "table1.json") != 0 ||
        dhf_mkdir_p(p->out_dir) != 0 || dhf_write_file_atomic(md_path, md, md_len) != 0 ||
        dhf_write_file_atomic(js_path, js, strlen(js)) != 0) {
        free(js);
        if (!dhf_err_msg()[0])
            dhf_err_set("out of memory");
        goto done;
    }
    free(js);
    for (int d = 0; d < T1_NDATASETS; d++)
        if (write_per_category(&R, d) != 0)
            goto done;
    fputs("\n", stdout);
    fwrite(md, 1, md_len, stdout);
    printf("\nwrote %s, %s, per_category/, heatmaps/\n", md_path, js_path);
    rc = 0;
done:
    for (int i = 0; R.res && i < R.n_rows; i++)
        for (int d = 0; d < T1_NDATASETS; d++)
            free_result(&R.res[i][d]);
    free(R.res);
    free(jd);
    free(md);
    cJSON_Delete(doc);
    return rc;
}
