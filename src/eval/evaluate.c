/* evaluate.c — the evaluation run: descriptors per image (cached within the
 * run), keypoint transfer per pair, prediction dump, PCK report and its files. */
#include "eval/evaluate.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/progress.h"
#include "eval/predictions.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DHF_VERSION
#define DHF_VERSION "unknown"
#endif

#define HEADLINE_ALPHA 0.1
#define DEFAULT_CACHE_BYTES ((size_t)1 << 30)

void dhf_eval_opts_default(dhf_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    dhf_match_opts_default(&o->match);
    const double paper[4] = {0.01, 0.05, 0.10, 0.15};
    o->n_alphas = 4;
    memcpy(o->alphas, paper, sizeof paper);
    o->dump_predictions = true;
    o->progress = true;
}

void dhf_eval_result_free(dhf_eval_result *res)
{
    if (res)
        dhf_pck_report_free(&res->report);
}

/* ---- descriptor cache (LRU by bytes) ------------------------------------------ */

typedef struct {
    char *key;
    dhf_descriptors d;
    size_t bytes;
    uint64_t last_used;
} cache_entry;

typedef struct {
    cache_entry *e;
    int n, cap;
    size_t bytes, budget;
    uint64_t tick;          /* advanced once per pair: entries of the current pair are pinned */
} desc_cache;

static void cache_free(desc_cache *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        free(c->e[i].d.data);
    }
    free(c->e);
    memset(c, 0, sizeof *c);
}

static const dhf_descriptors *cache_find(desc_cache *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->e[i].key, key) == 0) {
            c->e[i].last_used = c->tick;
            return &c->e[i].d;
        }
    return NULL;
}

/* Takes ownership of d->data. Evicts least recently used entries (never the
 * current pair's) to stay within the budget; one entry is always kept. */
static const dhf_descriptors *cache_put(desc_cache *c, const char *key, dhf_descriptors *d)
{
    size_t bytes = (size_t)d->c * d->h * d->w * sizeof(float);
    while (c->bytes + bytes > c->budget) {
        int victim = -1;
        for (int i = 0; i < c->n; i++)
            if (c->e[i].last_used != c->tick && (victim < 0 || c->e[i].last_used < c->e[victim].last_used))
                victim = i;
        if (victim < 0)
            break;
        c->bytes -= c->e[victim].bytes;
        free(c->e[victim].key);
        free(c->e[victim].d.data);
        c->e[victim] = c->e[--c->n];
    }
    if (c->n == c->cap) {
        int ncap = c->cap ? 2 * c->cap : 16;
        cache_entry *ne = realloc(c->e, (size_t)ncap * sizeof *ne);
        if (!ne)
            return NULL;
        c->e = ne, c->cap = ncap;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    c->e[c->n] = (cache_entry){k, *d, bytes, c->tick};
    d->data = NULL;
    c->bytes += bytes;
    return &c->e[c->n++].d;
}

static const dhf_descriptors *descriptors_for(desc_cache *cache, dhf_provider *prov, const dhf_eval_opts *o,
                                              const char *key, const char *path, const int size[2],
                                              long *n_described)
{
    const dhf_descriptors *hit = cache_find(cache, key);
    if (hit)
        return hit;
    dhf_image img = {0};
    if (prov->needs_image && dhf_image_load(path, &img) != 0)
        return NULL;
    if (prov->needs_image && (img.width != size[0] || img.height != size[1])) {
        dhf_err_set("%s: decoded size %dx%d differs from the annotated %dx%d", path, img.width, img.height,
                    size[0], size[1]);
        dhf_image_free(&img);
        return NULL;
    }
    dhf_provider_input in = {.key = key, .path = path, .width = size[0], .height = size[1],
                             .image = prov->needs_image ? &img : NULL, .load_size = o->match.load_size,
                             .resize = o->match.resize};
    dhf_descriptors d = {0};
    int rc = prov->describe(prov->ctx, &in, &d);
    dhf_image_free(&img);
    if (rc != 0) {
        free(d.data);
        dhf_err_wrap("provider '%s'", prov->name);
        return NULL;
    }
    if (!d.data || d.c < 1 || d.h < 1 || d.w < 1) {
        free(d.data);
        dhf_err_set("provider '%s': %s: returned an empty descriptor map (%dx%dx%d)", prov->name, key, d.c, d.h,
                    d.w);
        return NULL;
    }
    (*n_described)++;
    const dhf_descriptors *stored = cache_put(cache, key, &d);
    if (!stored) {
        free(d.data);
        dhf_err_set("out of memory caching the descriptors of %s", key);
    }
    return stored;
}

/* ---- pairs -> judged keypoints ------------------------------------------------- */

int dhf_eval_pair_keypoints(const dhf_pair *p, int pair_index, int category, const double *pred_xy,
                            dhf_pck_kp *out)
{
    int n = 0;
    double img_size = dhf_pck_img_size(p->trg_size[0], p->trg_size[1]);
    double bbox_size = dhf_pck_bbox_size(p->trg_bbox[0], p->trg_bbox[1], p->trg_bbox[2], p->trg_bbox[3]);
    for (int k = 0; k < p->n_kps; k++) {
        if (p->visible && !p->visible[k])
            continue;
        dhf_pck_kp *kp = &out[n++];
        memset(kp, 0, sizeof *kp);
        kp->pair = pair_index;
        kp->category = category;
        kp->gt[0] = p->trg_kps[2 * k];
        kp->gt[1] = p->trg_kps[2 * k + 1];
        kp->pred[0] = pred_xy[2 * k];
        kp->pred[1] = pred_xy[2 * k + 1];
        kp->size[DHF_PCK_IMG] = img_size;
        kp->size[DHF_PCK_BBOX] = bbox_size;
        kp->attr[DHF_PCK_ATTR_VIEWPOINT] = p->viewpoint_variation;
        kp->attr[DHF_PCK_ATTR_SCALE] = p->scale_variation;
        kp->attr[DHF_PCK_ATTR_TRUNCATION] = p->truncation;
        kp->attr[DHF_PCK_ATTR_OCCLUSION] = p->occlusion;
    }
    return n;
}

/* ---- protocol ------------------------------------------------------------------ */

cJSON *dhf_eval_protocol_common(const double *alphas, int n_alphas)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *al = cJSON_AddArrayToObject(o, "alphas");
    for (int a = 0; al && a < n_alphas; a++)
        cJSON_AddItemToArray(al, dhf_json_exact_number(alphas[a]));
    cJSON *th = cJSON_AddObjectToObject(o, "thresholds");
    if (th) {
        cJSON_AddStringToObject(th, "img", "alpha * max(W, H) of the target image");
        cJSON_AddStringToObject(th, "bbox", "alpha * max(x2 - x1, y2 - y1) of the target box");
        cJSON_AddStringToObject(th, "correct", "distance <= threshold, both in the target's original pixels "
                                               "(double precision, as numpy)");
    }
    cJSON *av = cJSON_AddObjectToObject(o, "averaging");
    if (av) {
        cJSON_AddStringToObject(av, "headline", "per_keypoint");
        dhf_json_add_exact(av, "headline_alpha", HEADLINE_ALPHA);
        cJSON_AddStringToObject(av, "per_keypoint", "correct keypoints / all keypoints, pooled over every pair "
                                                    "(the paper's number)");
        cJSON_AddStringToObject(av, "per_image", "mean over pairs of each pair's PCK (pairs with no keypoint "
                                                 "left out)");
        cJSON_AddStringToObject(av, "per_category", "both averages within each category");
        cJSON_AddStringToObject(av, "category_mean", "unweighted mean of the per-category values over "
                                                     "categories with keypoints");
    }
    return o;
}

cJSON *dhf_eval_protocol_json(const dhf_dataset *ds, const dhf_provider *provider, const dhf_eval_opts *o)
{
    cJSON *p = cJSON_CreateObject();
    if (!p)
        return NULL;
    cJSON_AddStringToObject(p, "dhf_version", DHF_VERSION);
    cJSON_AddStringToObject(p, "dataset", ds->name);
    cJSON_AddStringToObject(p, "root", ds->root);
    cJSON_AddStringToObject(p, "split", ds->split);
    cJSON *sub = cJSON_AddObjectToObject(p, "subset");
    if (sub) {
        cJSON_AddStringToObject(sub, "name", ds->subset.name);
        if (ds->subset.list_path[0])
            cJSON_AddStringToObject(sub, "list_path", ds->subset.list_path);
        dhf_json_add_exact(sub, "per_category", ds->subset.per_category);
        /* A 64-bit seed does not fit a JSON double: decimal string. */
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)ds->subset.seed);
        cJSON_AddStringToObject(sub, "seed", seed);
        dhf_json_add_exact(sub, "count", (double)ds->subset.count);
        cJSON_AddStringToObject(sub, "hash", ds->subset.hash);
        cJSON_AddStringToObject(sub, "hash_of", "FNV-1a 64 over the sorted pair ids, each followed by a newline");
    }
    dhf_json_add_exact(p, "load_size", o->match.load_size);
    cJSON_AddStringToObject(p, "resize", dhf_resize_policy_name(o->match.resize));
    cJSON *m = cJSON_AddObjectToObject(p, "matcher");
    if (m) {
        cJSON_AddStringToObject(m, "name", dhf_matcher_name(o->match.matcher));
        cJSON_AddStringToObject(m, "similarity", "cosine, both maps resized bilinearly (align_corners=False) "
                                                 "to load_size x load_size");
        cJSON_AddStringToObject(m, "source_point", "x * (L / frame_w), rounded half to even after clipping to "
                                                   "[0, L-1] (the paper's points_to_idxs)");
        cJSON_AddStringToObject(m, "ties", "first pixel in row-major order");
        if (o->match.matcher != DHF_MATCH_ARGMAX)
            dhf_json_add_exact(m, "temperature", o->match.temperature);
        if (o->match.matcher == DHF_MATCH_WINDOW_SOFT_ARGMAX)
            dhf_json_add_exact(m, "window_radius", o->match.window_radius);
        cJSON_AddBoolToObject(m, "mutual_check", o->match.mutual);
    }
    cJSON *common = dhf_eval_protocol_common(o->alphas, o->n_alphas);
    if (common) {
        while (common->child) {
            cJSON *it = cJSON_DetachItemViaPointer(common, common->child);
            cJSON_AddItemToObject(p, it->string, it);
        }
        cJSON_Delete(common);
    }
    cJSON_AddStringToObject(p, "keypoints", "those visible in both images");
    cJSON_AddItemToObject(p, "descriptor_source", dhf_provider_protocol_json(provider));
    if (o->extra_protocol) {
        const cJSON *it;
        cJSON_ArrayForEach(it, o->extra_protocol)
        {
            if (it->string && !cJSON_GetObjectItemCaseSensitive(p, it->string))
                cJSON_AddItemToObject(p, it->string, cJSON_Duplicate(it, 1));
        }
    }
    return p;
}

/* ---- reports ------------------------------------------------------------------- */

void dhf_eval_summary_line(const dhf_pck_report *r, char *buf, size_t n)
{
    int h = dhf_pck_alpha_index(r, HEADLINE_ALPHA);
    if (h < 0)
        h = 0;
    char key[40];
    snprintf(buf, n, "PCK@%s img %.2f bbox %.2f (pooled per keypoint; %ld pairs, %ld keypoints)",
             dhf_pck_alpha_key(r->alphas[h], key, sizeof key), 100.0 * r->overall.per_keypoint[DHF_PCK_IMG][h],
             100.0 * r->overall.per_keypoint[DHF_PCK_BBOX][h], r->overall.n_pairs, r->overall.n_keypoints);
}

int dhf_eval_write_results(const char *dir, const dhf_pck_report *r, const cJSON *protocol, const cJSON *run,
                           const char *title)
{
    char path[4096];
    if (dhf_mkdir_p(dir) != 0)
        return -1;
    cJSON *doc = cJSON_CreateObject();
    cJSON *metrics = dhf_pck_report_to_json(r);
    char summary[512];
    dhf_eval_summary_line(r, summary, sizeof summary);
    if (!doc || !metrics) {
        cJSON_Delete(doc), cJSON_Delete(metrics);
        return dhf_err_set("out of memory building results.json");
    }
    cJSON_AddStringToObject(doc, "summary", summary);
    cJSON_AddItemToObject(doc, "protocol", protocol ? cJSON_Duplicate(protocol, 1) : cJSON_CreateObject());
    cJSON_AddItemToObject(doc, "metrics", metrics);
    if (run)
        cJSON_AddItemToObject(doc, "run", cJSON_Duplicate(run, 1));
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    if (!text)
        return dhf_err_set("out of memory printing results.json");
    int rc = dhf_path_join(path, sizeof path, dir, "results.json");
    if (rc == 0) {
        size_t len = strlen(text);
        text[len] = '\n';   /* the NUL becomes the final newline; text is not a string after this */
        rc = dhf_write_file_atomic(path, text, len + 1);
    }
    free(text);
    if (rc != 0)
        return -1;

    dhf_atomic_file af;
    if (dhf_path_join(path, sizeof path, dir, "results.md") != 0 || dhf_atomic_open(&af, path) != 0)
        return -1;
    fprintf(af.fp, "# %s\n\n%s\n\n", title ? title : "PCK results", summary);
    if (protocol) {
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(protocol, "dataset");
        const cJSON *split = cJSON_GetObjectItemCaseSensitive(protocol, "split");
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(protocol, "subset");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(protocol, "descriptor_source");
        fprintf(af.fp, "Protocol (full record in results.json):\n\n");
        if (cJSON_IsString(ds))
            fprintf(af.fp, "- dataset: %s, split %s\n", ds->valuestring,
                    cJSON_IsString(split) ? split->valuestring : "?");
        if (sub) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(sub, "name");
            const cJSON *hs = cJSON_GetObjectItemCaseSensitive(sub, "hash");
            const cJSON *sd = cJSON_GetObjectItemCaseSensitive(sub, "seed");
            fprintf(af.fp, "- subset: %s, %ld pairs evaluated, seed %s, hash %s\n",
                    cJSON_IsString(nm) ? nm->valuestring : "?", r->overall.n_pairs,
                    cJSON_IsString(sd) ? sd->valuestring : "?", cJSON_IsString(hs) ? hs->valuestring : "?");
        }
        const cJSON *ls = cJSON_GetObjectItemCaseSensitive(protocol, "load_size");
        double lsv = cJSON_IsRaw(ls) ? strtod(ls->valuestring, NULL) : cJSON_IsNumber(ls) ? ls->valuedouble : 0;
        const cJSON *rz = cJSON_GetObjectItemCaseSensitive(protocol, "resize");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(protocol, "matcher"), "name");
        if (lsv > 0)   /* our protocol holds exact-printed (raw) numbers */
            fprintf(af.fp, "- load size %d, resize %s, matcher %s\n", (int)lsv,
                    cJSON_IsString(rz) ? rz->valuestring : "?", cJSON_IsString(mt) ? mt->valuestring : "?");
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(protocol, "recomputed_from");
        if (cJSON_IsString(from))
            fprintf(af.fp, "- recomputed from predictions: %s\n", from->valuestring);
        if (src) {
            const cJSON *pn = cJSON_GetObjectItemCaseSensitive(src, "provider");
            const cJSON *pd = cJSON_GetObjectItemCaseSensitive(src, "description");
            fprintf(af.fp, "- descriptors: %s — %s\n", cJSON_IsString(pn) ? pn->valuestring : "?",
                    cJSON_IsString(pd) ? pd->valuestring : "");
        }
        fprintf(af.fp, "- thresholds in the target's original pixels: img = α·max(W,H), "
                       "bbox = α·max(w,h) of the box; correct iff distance ≤ threshold\n\n");
    }
    if (dhf_pck_report_write_md(r, HEADLINE_ALPHA, af.fp) != 0) {
        dhf_atomic_abort(&af);
        return -1;
    }
    return dhf_atomic_commit(&af);
}

/* ---- metric comparison ----------------------------------------------------------- */

static int compare_rec(const cJSON *a, const cJSON *b, char *path, size_t cap)
{
    size_t plen = strlen(path);
    /* Raw items are our exact-printed numbers. */
    bool num_a = cJSON_IsNumber(a) || cJSON_IsRaw(a), num_b = cJSON_IsNumber(b) || cJSON_IsRaw(b);
    if ((a->type & 0xFF) != (b->type & 0xFF) && !(num_a && num_b))
        return dhf_err_set("metrics differ at %s: different types", plen ? path : "(root)");
    if (num_a) {
        double x = cJSON_IsRaw(a) ? strtod(a->valuestring, NULL) : a->valuedouble;
        double y = cJSON_IsRaw(b) ? strtod(b->valuestring, NULL) : b->valuedouble;
        if (x != y)
            return dhf_err_set("metrics differ at %s: %.17g vs %.17g", path, x, y);
        return 0;
    }
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0 ? 0
                                                           : dhf_err_set("metrics differ at %s: '%s' vs '%s'", path,
                                                                         a->valuestring, b->valuestring);
    if (cJSON_IsArray(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
            return dhf_err_set("metrics differ at %s: %d vs %d elements", path, cJSON_GetArraySize(a),
                               cJSON_GetArraySize(b));
        const cJSON *x = a->child, *y = b->child;
        for (int i = 0; x && y; i++, x = x->next, y = y->next) {
            snprintf(path + plen, cap - plen, "[%d]", i);
            if (compare_rec(x, y, path, cap) != 0)
                return -1;
        }
        path[plen] = '\0';
        return 0;
    }
    if (cJSON_IsObject(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
            return dhf_err_set("metrics differ at %s: %d vs %d keys", plen ? path : "(root)", cJSON_GetArraySize(a),
                               cJSON_GetArraySize(b));
        const cJSON *x;
        cJSON_ArrayForEach(x, a)
        {
            snprintf(path + plen, cap - plen, ".%s", x->string);
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (!y)
                return dhf_err_set("metrics differ: %s missing on one side", path);
            if (compare_rec(x, y, path, cap) != 0)
                return -1;
        }
        path[plen] = '\0';
        return 0;
    }
    if (cJSON_IsBool(a) && cJSON_IsTrue(a) != cJSON_IsTrue(b))
        return dhf_err_set("metrics differ at %s: booleans", path);
    return 0;   /* null == null */
}

int dhf_eval_compare_metrics(const cJSON *a, const cJSON *b)
{
    char path[1024] = "";
    if (!a || !b)
        return dhf_err_set("metrics missing on one side");
    return compare_rec(a, b, path, sizeof path);
}

/* ---- the run ------------------------------------------------------------------- */

static int write_pair_predictions(FILE *fp, const dhf_pair *p, int pair_index, const dhf_match_result *res,
                                  const int *kp_map, const dhf_eval_opts *o)
{
    for (int k = 0; k < p->n_kps; k++) {
        int j = kp_map[k];
        if (j < 0)
            continue;
        dhf_prediction pr = {.pair_id = p->id, .pair = pair_index, .category = p->category,
                             .kp_id = p->kp_ids ? p->kp_ids[k] : k, .score = res[j].score,
                             .mutual = res[j].mutual};
        pr.src[0] = p->src_kps[2 * k], pr.src[1] = p->src_kps[2 * k + 1];
        pr.gt[0] = p->trg_kps[2 * k], pr.gt[1] = p->trg_kps[2 * k + 1];
        pr.pred[0] = res[j].x, pr.pred[1] = res[j].y;
        pr.target_size[0] = p->trg_size[0], pr.target_size[1] = p->trg_size[1];
        memcpy(pr.target_bbox, p->trg_bbox, sizeof pr.target_bbox);
        pr.attr[DHF_PCK_ATTR_VIEWPOINT] = p->viewpoint_variation;
        pr.attr[DHF_PCK_ATTR_SCALE] = p->scale_variation;
        pr.attr[DHF_PCK_ATTR_TRUNCATION] = p->truncation;
        pr.attr[DHF_PCK_ATTR_OCCLUSION] = p->occlusion;
        cJSON *line = dhf_prediction_to_json(&pr, o->alphas, o->n_alphas);
        char *text = line ? cJSON_PrintUnformatted(line) : NULL;
        cJSON_Delete(line);
        if (!text)
            return dhf_err_set("out of memory writing predictions");
        fputs(text, fp);
        fputc('\n', fp);
        free(text);
    }
    return ferror(fp) ? dhf_err_set("write error in predictions.jsonl") : 0;
}

int dhf_eval_run(const dhf_dataset *ds, dhf_provider *provider, const dhf_eval_opts *o, dhf_eval_result *res)
{
    memset(res, 0, sizeof *res);
    if (dhf_pck_check_alphas(o->alphas, o->n_alphas) != 0)
        return -1;
    if (!provider || !provider->describe)
        return dhf_err_set("eval: no descriptor provider");
    if (ds->n_pairs == 0)
        return dhf_err_set("eval: the pair set is empty");
    double t0 = dhf_now();

    size_t max_kps = 0, total_kps = 0;
    for (size_t i = 0; i < ds->n_pairs; i++) {
        const dhf_pair *p = &ds->pairs[i];
        if (p->n_kps < 0)
            return dhf_err_set("pair %s: negative keypoint count", p->id);
        if ((size_t)p->n_kps > max_kps)
            max_kps = (size_t)p->n_kps;
        total_kps += (size_t)p->n_kps;
        if (p->src_size[0] < 1 || p->src_size[1] < 1 || p->trg_size[0] < 1 || p->trg_size[1] < 1)
            return dhf_err_set("pair %s: image sizes unknown (resolve the images first)", p->id);
        if (dhf_dataset_category_index(ds, p->category) < 0)
            return dhf_err_set("pair %s: category '%s' is not one of the dataset's", p->id, p->category);
    }
    if (ds->n_pairs > INT32_MAX)
        return dhf_err_set("eval: too many pairs (%zu)", ds->n_pairs);

    int rc = -1;
    desc_cache cache = {.budget = o->cache_bytes ? o->cache_bytes : DEFAULT_CACHE_BYTES};
    dhf_pck_kp *kps = malloc((total_kps ? total_kps : 1) * sizeof *kps);
    double *src_xy = malloc((max_kps ? max_kps : 1) * 2 * sizeof *src_xy);
    double *pred_xy = malloc((max_kps ? max_kps : 1) * 2 * sizeof *pred_xy);
    int *kp_map = malloc((max_kps ? max_kps : 1) * sizeof *kp_map);
    dhf_match_result *mres = malloc((max_kps ? max_kps : 1) * sizeof *mres);
    size_t n_judged = 0;
    dhf_atomic_file af = {0};
    bool dump = o->out_dir && o->dump_predictions;
    dhf_progress prog;
    bool prog_on = false;
    if (!kps || !src_xy || !pred_xy || !kp_map || !mres) {
        dhf_err_set("eval: out of memory for %zu keypoints", total_kps);
        goto done;
    }
    if (o->out_dir && dhf_mkdir_p(o->out_dir) != 0)
        goto done;
    if (dump) {
        char path[4096];
        if (dhf_path_join(path, sizeof path, o->out_dir, "predictions.jsonl") != 0 ||
            dhf_atomic_open(&af, path) != 0)
            goto done;
    }
    if (o->progress) {
        dhf_progress_begin(&prog, "eval", (int64_t)ds->n_pairs);
        dhf_progress_set_unit(&prog, "pair");
        prog_on = true;
    }

    int h = -1;
    for (int a = 0; a < o->n_alphas; a++)
        if (o->alphas[a] == HEADLINE_ALPHA)
            h = a;
    if (h < 0)
        h = 0;
    long run_correct = 0, run_total = 0;

    for (size_t i = 0; i < ds->n_pairs; i++) {
        const dhf_pair *p = &ds->pairs[i];
        cache.tick++;
        const dhf_descriptors *ds_src =
            descriptors_for(&cache, provider, o, p->src_key, p->src_path, p->src_size, &res->n_images_described);
        if (!ds_src) {
            dhf_err_wrap("pair %s: source image %s", p->id, p->src_path);
            goto done;
        }
        const dhf_descriptors *ds_trg =
            descriptors_for(&cache, provider, o, p->trg_key, p->trg_path, p->trg_size, &res->n_images_described);
        if (!ds_trg) {
            dhf_err_wrap("pair %s: target image %s", p->id, p->trg_path);
            goto done;
        }
        int n_vis = 0;
        for (int k = 0; k < p->n_kps; k++) {
            if (p->visible && !p->visible[k]) {
                kp_map[k] = -1;
                pred_xy[2 * k] = pred_xy[2 * k + 1] = NAN;
                continue;
            }
            kp_map[k] = n_vis;
            src_xy[2 * n_vis] = p->src_kps[2 * k];
            src_xy[2 * n_vis + 1] = p->src_kps[2 * k + 1];
            n_vis++;
        }
        dhf_desc_map ms = {ds_src->data, ds_src->c, ds_src->h, ds_src->w, p->src_size[0], p->src_size[1]};
        dhf_desc_map mt = {ds_trg->data, ds_trg->c, ds_trg->h, ds_trg->w, p->trg_size[0], p->trg_size[1]};
        if (n_vis > 0 && dhf_match_points(&o->match, &ms, &mt, src_xy, n_vis, mres) != 0) {
            dhf_err_wrap("pair %s", p->id);
            goto done;
        }
        for (int k = 0; k < p->n_kps; k++)
            if (kp_map[k] >= 0) {
                pred_xy[2 * k] = mres[kp_map[k]].x;
                pred_xy[2 * k + 1] = mres[kp_map[k]].y;
            }
        int cat = dhf_dataset_category_index(ds, p->category);
        int nj = dhf_eval_pair_keypoints(p, (int)i, cat, pred_xy, kps + n_judged);
        if (nj == 0)
            res->n_pairs_without_keypoints++;
        for (int k = 0; k < nj; k++) {
            const dhf_pck_kp *kp = &kps[n_judged + k];
            run_correct += dhf_pck_correct(dhf_pck_distance(kp->pred, kp->gt), o->alphas[h], kp->size[DHF_PCK_IMG]);
        }
        run_total += nj;
        n_judged += (size_t)nj;
        if (dump && write_pair_predictions(af.fp, p, (int)i, mres, kp_map, o) != 0)
            goto done;
        if (prog_on) {
            char note[64], key[40];
            snprintf(note, sizeof note, "PCK@%s img %.1f",
                     dhf_pck_alpha_key(o->alphas[h], key, sizeof key),
                     run_total ? 100.0 * (double)run_correct / (double)run_total : 0.0);
            dhf_progress_step(&prog, 1, note);
        }
    }
    if (prog_on) {
        dhf_progress_end(&prog);
        prog_on = false;
    }
    if (dhf_pck_compute(kps, n_judged, (int)ds->n_pairs, (const char *const *)ds->categories, ds->n_categories,
                        o->alphas, o->n_alphas, &res->report) != 0)
        goto done;
    res->n_pairs = (long)ds->n_pairs;
    res->seconds = dhf_now() - t0;
    dhf_eval_summary_line(&res->report, res->summary, sizeof res->summary);

    if (dump) {
        if (dhf_atomic_commit(&af) != 0)
            goto done;
        af.fp = NULL;
    }
    if (o->out_dir) {
        cJSON *protocol = dhf_eval_protocol_json(ds, provider, o);
        cJSON *run = cJSON_CreateObject();
        if (run) {
            dhf_json_add_exact(run, "pairs", (double)res->n_pairs);
            dhf_json_add_exact(run, "pairs_without_keypoints", (double)res->n_pairs_without_keypoints);
            dhf_json_add_exact(run, "images_described", (double)res->n_images_described);
            dhf_json_add_exact(run, "seconds", res->seconds);
            cJSON_AddBoolToObject(run, "predictions_written", dump);
        }
        char title[512];
        snprintf(title, sizeof title, "dhf eval — %s, split %s, subset %s", ds->name, ds->split, ds->subset.name);
        int wr = protocol ? dhf_eval_write_results(o->out_dir, &res->report, protocol, run, title)
                          : dhf_err_set("out of memory building the protocol");
        cJSON_Delete(protocol);
        cJSON_Delete(run);
        if (wr != 0)
            goto done;
    }
    rc = 0;
done:
    if (prog_on)
        dhf_progress_end(&prog);
    if (af.fp)
        dhf_atomic_abort(&af);
    if (rc != 0)
        dhf_pck_report_free(&res->report);
    cache_free(&cache);
    free(kps), free(src_xy), free(pred_xy), free(kp_map), free(mres);
    return rc;
}
