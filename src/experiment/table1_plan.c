/* table1_plan.c — dhf table1's planner and runner: the stages the selected rows
 * need (feature caches, training runs, evaluations), whether each is done, the
 * plan printed, and the missing stages run through the library calls of dhf
 * extract, train and eval.
 *
 * A stage is done when its record <out>/stages/<id>.json says so for the same
 * recipe (a hash of everything that determines its output: the configuration the
 * call gets and, for an evaluation, the checkpoint's bytes) and its output exists.
 * Training writes a "running" record first, so a run killed midway is resumed
 * (bit-exactly, trainer.h) rather than restarted; a run folder whose recipe
 * changed is moved aside and trained anew. Feature caches are named by a hash of
 * their extraction identity, so changed extraction settings get a new file. */
#include "experiment/table1.h"
#include "experiment/table1_internal.h"
#include "cache/feature_cache.h"

#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "experiment/eval_command.h"
#include "extract/extract_run.h"
#include "extract/vit_provider.h"
#include "train/trainer.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- recipes and records -------------------------------------------------- */

static void hash_str(uint64_t *h, const char *s)
{
    dhf_fnv1a64_update(h, (const unsigned char *)s, strlen(s) + 1);
}

static void hex16(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, h);
}

/* FNV-1a 64 of a file's bytes (a checkpoint: a few MB), as 16 hex digits. */
static int hash_file(const char *path, char out[17])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dhf_err_set("%s: %s", path, strerror(errno));
    uint64_t h = DHF_FNV1A64_INIT;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        dhf_fnv1a64_update(&h, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return dhf_err_set("%s: read error", path);
    hex16(h, out);
    return 0;
}

static int record_path(const t1_plan *p, const t1_stage *s, char *out, size_t n)
{
    char leaf[160];
    snprintf(leaf, sizeof leaf, "%s.json", s->id);
    return dhf_path_join(out, n, p->stage_dir, leaf);
}

/* The record's state ("done", "running") when its recipe is `recipe`, else "". */
static void read_record(const t1_plan *p, const t1_stage *s, char *state, size_t n)
{
    state[0] = '\0';
    char path[4400];
    char *text = NULL;
    size_t len = 0;
    if (record_path(p, s, path, sizeof path) != 0 || !dhf_path_exists(path) ||
        dhf_read_file(path, &text, &len) != 0) {
        dhf_err_clear();
        return;
    }
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "recipe");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    if (cJSON_IsString(r) && cJSON_IsString(st) && strcmp(r->valuestring, s->recipe) == 0)
        snprintf(state, n, "%s", st->valuestring);
    cJSON_Delete(o);
}

static int write_record(const t1_plan *p, const t1_stage *s, const char *state)
{
    char path[4400];
    if (dhf_mkdir_p(p->stage_dir) != 0 || record_path(p, s, path, sizeof path) != 0)
        return -1;
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "what", s->what);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddStringToObject(o, "recipe", s->recipe);
    cJSON_AddStringToObject(o, "output", s->output);
    if (s->checkpoint[0])
        cJSON_AddStringToObject(o, "checkpoint", s->checkpoint);
    cJSON_AddStringToObject(o, "time", stamp);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return dhf_err_set("out of memory");
    int rc = dhf_write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

/* Keys that cannot change a stage's output, left out of its recipe. A training run
 * never reads the evaluation's pair selection; an evaluation reads the training
 * keys only through the checkpoint, whose bytes are in its recipe. */
static const char *const train_ignores[] = {"threads", "split", "test_path", "image_list", NULL};
static const char *const eval_ignores[] = {
    "threads", "lr", "weight_decay", "max_epochs", "max_steps_per_epoch", "val_every_n_steps",
    "checkpoint_every_n_steps", "pck_threshold", "batch_size", "checkpoint_metric",
    "recompute_layers", "train_path", "val_path", "val_pairs_per_category", "projection_dim",
    "output_resolution", "output_dir", "run_name", NULL};

/* A ViT row reads the images, its own ViT keys and the evaluation's keys, nothing else. */
#define VIT_EVAL_READS                                                                      \
    "eval.", "dataset", "data_root", "test_path", "split", "pairs_per_category",           \
        "subset_seed", "load_resolution", "device"
static const char *const dino_eval_reads[] = {
    VIT_EVAL_READS, "vit.dino_model", "vit.dino_weights", "vit.dino_layer", "vit.dino_stride",
    "vit.dino_load_size", NULL};
static const char *const dinov2_eval_reads[] = {
    VIT_EVAL_READS, "vit.dinov2_model", "vit.dinov2_weights", "vit.dinov2_layer",
    "vit.dinov2_load_size", "vit.dinov2_final_norm", NULL};

static bool listed(const char *const *list, const char *path)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], path) == 0)
            return true;
    return false;
}

/* Keys back to their defaults: those under `prefix` (when not NULL) and those listed. */
static void reset_keys(dhf_config *c, const char *prefix, const char *const *list)
{
    dhf_config d;
    dhf_config_defaults(&d);
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++)
        if ((prefix && strncmp(k->path, prefix, strlen(prefix)) == 0) ||
            (list && listed(list, k->path)))
            memcpy((char *)c + k->offset, (const char *)&d + k->offset, k->size);
}

/* Keys back to their defaults except those `keep` lists (a name, or a prefix ending
 * in '.'). */
static void keep_only(dhf_config *c, const char *const *keep)
{
    dhf_config d;
    dhf_config_defaults(&d);
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        bool kept = false;
        for (int i = 0; keep[i] && !kept; i++) {
            size_t n = strlen(keep[i]);
            kept = keep[i][n - 1] == '.' ? strncmp(k->path, keep[i], n) == 0
                                         : strcmp(k->path, keep[i]) == 0;
        }
        if (!kept)
            memcpy((char *)c + k->offset, (const char *)&d + k->offset, k->size);
    }
}

/* The hash of everything that determines a stage's output. */
static int stage_recipe(t1_stage *s)
{
    uint64_t h = DHF_FNV1A64_INIT;
    hash_str(&h, s->id);
    if (s->kind == T1_EXTRACT) {
        /* what is computed, and which images */
        char *id = dhf_extract_identity_json(&s->cfg, s->cfg.prompt_embeds);
        if (!id)
            return dhf_err_set("out of memory");
        hash_str(&h, id);
        free(id);
        const dhf_config *c = &s->cfg;
        char sel[8 * DHF_CFG_STR];
        snprintf(sel, sizeof sel, "%s|%s|%s|%s|%s|%s|%d|%d|%" PRId64 "|%s|%s|%s|%s|%d", c->model_id,
                 c->dataset, c->data_root, c->split, c->train_path, c->val_path,
                 c->pairs_per_category, c->val_pairs_per_category, c->subset_seed, c->test_path,
                 c->image_list, c->cache_path, c->cache_dtype, c->cache_compression);
        hash_str(&h, sel);
    } else {
        dhf_config c = s->cfg;
        if (s->kind == T1_EVAL && s->row->model == T1_VIT) {
            keep_only(&c, strcmp(s->row->provider, "dino") == 0 ? dino_eval_reads
                                                                 : dinov2_eval_reads);
        } else {
            reset_keys(&c, NULL, s->kind == T1_TRAIN ? train_ignores : eval_ignores);
            reset_keys(&c, "vit.", NULL);   /* only the ViT rows read these */
        }
        char *js = dhf_config_to_json(&c);
        if (!js)
            return dhf_err_set("out of memory");
        hash_str(&h, js);
        free(js);
        if (s->kind == T1_EVAL) {
            hash_str(&h, s->row->provider);
            if (s->checkpoint[0]) {
                char ck[17];
                if (hash_file(s->checkpoint, ck) != 0)
                    return -1;
                hash_str(&h, ck);
            }
        }
    }
    hex16(h, s->recipe);
    return 0;
}

/* Whether the stage is done, resumable, stale or to do, from its record and output. */
int t1_stage_refresh(const t1_plan *p, t1_stage *s)
{
    s->recipe[0] = '\0';
    if (s->kind == T1_EVAL && s->network_stage >= 0 &&
        p->stages[s->network_stage].state != T1_DONE) {
        s->state = T1_TODO;   /* its checkpoint is not there yet */
        return 0;
    }
    if (s->kind == T1_EVAL && s->checkpoint[0] && !dhf_path_exists(s->checkpoint)) {
        s->state = T1_TODO;
        return 0;
    }
    if (stage_recipe(s) != 0)
        return -1;
    char state[32];
    read_record(p, s, state, sizeof state);
    bool done = strcmp(state, "done") == 0;
    switch (s->kind) {
    case T1_EXTRACT:
        s->state = done && dhf_path_exists(s->output) ? T1_DONE : T1_TODO;
        break;
    case T1_TRAIN: {
        char ck[4400];
        snprintf(ck, sizeof ck, "%s/%s.safetensors", s->output, p->base->t1_checkpoint);
        if (done && dhf_path_exists(ck))
            s->state = T1_DONE;
        else if (strcmp(state, "running") == 0 && dhf_is_dir(s->output))
            s->state = T1_RESUME;
        else if (dhf_path_exists(s->output))
            s->state = T1_STALE;
        else
            s->state = T1_TODO;
        break;
    }
    case T1_EVAL: {
        char a[4400], b[4400];
        snprintf(a, sizeof a, "%s/results.json", s->output);
        snprintf(b, sizeof b, "%s/predictions.jsonl", s->output);
        s->state = done && dhf_path_exists(a) && dhf_path_exists(b) ? T1_DONE : T1_TODO;
        break;
    }
    }
    return 0;
}

/* ---- the stages ------------------------------------------------------------- */

/* The configuration every call on (model, setting, dataset) shares. */
static int features_config(const t1_plan *p, int model, int setting, int dataset, dhf_config *c)
{
    const dhf_config *b = p->base;
    *c = *b;
    /* table1.* steer the plan, never a stage's output */
    reset_keys(c, "table1.", NULL);
    c->dump_predictions = true;
    c->run_name[0] = '\0';
    if (dhf_path_join(c->output_dir, sizeof c->output_dir, p->out_dir, "runs") != 0)
        return -1;
    if (model == T1_SD21)
        snprintf(c->model_id, sizeof c->model_id, "%s", b->t1_model_sd21);
    if (model == T1_VIT)
        c->cache_path[0] = '\0';   /* the ViT rows compute their features from the images */
    if (setting == T1_ONE_STEP) {
        /* the paper's one-step features: a single inversion step, label 0 */
        c->num_timesteps = 1;
        c->save_timestep.n = 1;
        c->save_timestep.v[0] = 0;
    }
    if (dataset == T1_CUB) {
        snprintf(c->dataset, sizeof c->dataset, "cub");
        snprintf(c->data_root, sizeof c->data_root, "%s", b->t1_cub_root);
        c->test_path[0] = '\0';
        c->pairs_per_category = b->t1_cub_pairs_per_category;
    } else {
        snprintf(c->dataset, sizeof c->dataset, "spair");
        if (strcmp(b->t1_test_pairs, "full") == 0)
            c->test_path[0] = '\0';
        else
            snprintf(c->test_path, sizeof c->test_path, "%s", b->t1_test_pairs);
    }
    if (model == T1_VIT)
        return 0;
    /* the cache file: one per model x extraction identity x dataset, so that other
     * extraction settings never meet an incompatible file */
    char *id = dhf_extract_identity_json(c, c->prompt_embeds);
    if (!id)
        return dhf_err_set("out of memory");
    uint64_t h = DHF_FNV1A64_INIT;
    hash_str(&h, id);
    hash_str(&h, c->model_id);
    free(id);
    /* and a file of an older cache schema (unreadable now) is never taken for done */
    char schema[32];
    snprintf(schema, sizeof schema, "cache schema %d", DHF_CACHE_SCHEMA_VERSION);
    hash_str(&h, schema);
    char hex[17], leaf[256], dir[4200];
    hex16(h, hex);
    snprintf(leaf, sizeof leaf, "%s-%s-%s-%.8s.h5", t1_model_names[model],
             t1_setting_names[setting], t1_dataset_names[dataset], hex);
    if (dhf_path_join(dir, sizeof dir, p->out_dir, "features") != 0 ||
        dhf_path_join(c->cache_path, sizeof c->cache_path, dir, leaf) != 0)
        return -1;
    return 0;
}

static int find_stage(const t1_plan *p, const char *id)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->stages[i].id, id) == 0)
            return i;
    return -1;
}

static t1_stage *new_stage(t1_plan *p)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        t1_stage *s = realloc(p->stages, (size_t)cap * sizeof *s);
        if (!s) {
            dhf_err_set("out of memory");
            return NULL;
        }
        p->stages = s;
        p->cap = cap;
    }
    t1_stage *s = &p->stages[p->n++];
    memset(s, 0, sizeof *s);
    s->network_stage = -1;
    return s;
}

/* The extraction of one split into the (model, setting, dataset) cache; its index. */
static int need_extract(t1_plan *p, int model, int setting, int dataset, const char *split)
{
    char id[128];
    snprintf(id, sizeof id, "extract-%s-%s-%s-%s", t1_model_names[model],
             t1_setting_names[setting], t1_dataset_names[dataset], split);
    int i = find_stage(p, id);
    if (i >= 0)
        return i;
    t1_stage *s = new_stage(p);
    if (!s)
        return -1;
    s->kind = T1_EXTRACT;
    snprintf(s->id, sizeof s->id, "%s", id);
    if (features_config(p, model, setting, dataset, &s->cfg) != 0)
        return -1;
    snprintf(s->cfg.split, sizeof s->cfg.split, "%s", split);
    snprintf(s->output, sizeof s->output, "%s", s->cfg.cache_path);
    snprintf(s->what, sizeof s->what, "extract %s %s features of %s %s", t1_model_names[model],
             t1_setting_names[setting], dataset == T1_CUB ? "CUB" : "SPair", split);
    return p->n - 1;
}

/* The training run of a network (after its trn and val features); its index. */
static int need_train(t1_plan *p, const t1_network *net)
{
    char id[128];
    snprintf(id, sizeof id, "train-%s", net->id);
    int i = find_stage(p, id);
    if (i >= 0)
        return i;
    if (need_extract(p, net->model, net->setting, T1_SPAIR, "trn") < 0 ||
        need_extract(p, net->model, net->setting, T1_SPAIR, "val") < 0)
        return -1;
    t1_stage *s = new_stage(p);
    if (!s)
        return -1;
    s->kind = T1_TRAIN;
    snprintf(s->id, sizeof s->id, "%s", id);
    if (features_config(p, net->model, net->setting, T1_SPAIR, &s->cfg) != 0)
        return -1;
    snprintf(s->cfg.run_name, sizeof s->cfg.run_name, "%s", net->id);
    if (dhf_path_join(s->output, sizeof s->output, s->cfg.output_dir, net->id) != 0)
        return -1;
    snprintf(s->what, sizeof s->what, "train %s", net->name);
    return p->n - 1;
}

static int need_eval(t1_plan *p, const t1_row *row, int dataset)
{
    const char *split = "test";
    if (row->model != T1_VIT && need_extract(p, row->model, row->setting, dataset, split) < 0)
        return -1;
    int net_stage = -1;
    if (row->network) {
        const t1_network *net = t1_find_network(row->network);
        if (!net || (net_stage = need_train(p, net)) < 0)
            return dhf_err_set("row %s: no network '%s'", row->id, row->network);
    }
    t1_stage *s = new_stage(p);
    if (!s)
        return -1;
    s->kind = T1_EVAL;
    s->row = row;
    s->dataset = dataset;
    s->network_stage = net_stage;
    snprintf(s->id, sizeof s->id, "eval-%s-%s", row->id, t1_dataset_names[dataset]);
    if (features_config(p, row->model, row->setting, dataset, &s->cfg) != 0)
        return -1;
    snprintf(s->cfg.split, sizeof s->cfg.split, "%s", split);
    char dir[4200], leaf[160];
    snprintf(leaf, sizeof leaf, "%s-%s", row->id, t1_dataset_names[dataset]);
    if (dhf_path_join(dir, sizeof dir, p->out_dir, "eval") != 0 ||
        dhf_path_join(s->output, sizeof s->output, dir, leaf) != 0)
        return -1;
    if (net_stage >= 0) {
        char ck[32];
        snprintf(ck, sizeof ck, "%s.safetensors", p->base->t1_checkpoint);
        if (dhf_path_join(s->checkpoint, sizeof s->checkpoint, p->stages[net_stage].output, ck) != 0)
            return -1;
    }
    snprintf(s->what, sizeof s->what, "evaluate %s on %s test (%s%s%s)", row->name,
             dataset == T1_CUB ? "CUB" : "SPair", row->provider, row->network ? " of " : "",
             row->network ? row->network : "");
    return p->n - 1;
}

const t1_stage *t1_plan_eval(const t1_plan *p, const t1_row *row, int dataset)
{
    for (int i = 0; i < p->n; i++)
        if (p->stages[i].kind == T1_EVAL && p->stages[i].row == row &&
            p->stages[i].dataset == dataset)
            return &p->stages[i];
    return NULL;
}

/* Marks the rows of a "a,b,c" list; -2 with a message for an unknown id. */
static int select_rows(t1_plan *p, const char *rows)
{
    int n = 0;
    for (const t1_row *r = t1_rows; r->id; r++, n++)
        p->row_selected[n] = rows == NULL;
    if (!rows)
        return 0;
    const char *s = rows;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int i = 0;
        const t1_row *r = t1_rows;
        for (; r->id; r++, i++)
            if (strlen(r->id) == len && strncmp(r->id, s, len) == 0)
                break;
        if (!r->id) {
            char known[512] = "";
            for (const t1_row *q = t1_rows; q->id; q++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         known[0] ? ", " : "", q->id);
            dhf_err_set("--rows: unknown row '%.*s' (rows: %s)", (int)len, s, known);
            return -2;
        }
        p->row_selected[i] = true;
        s = e ? e + 1 : s + len;
    }
    return 0;
}

void dhf_table1_rows_help(FILE *f)
{
    for (const t1_row *r = t1_rows; r->id; r++)
        fprintf(f, "  %-16s %-16s %s\n", r->id, r->name,
                r->unavailable ? "(not available)" : r->shape);
}

/* ---- running ---------------------------------------------------------------- */

static const char *state_name(t1_state s)
{
    switch (s) {
    case T1_DONE: return "done";
    case T1_RESUME: return "resume";
    case T1_STALE: return "redo";
    default: return "to do";
    }
}

static int run_extract(t1_stage *s, const dhf_table1_options *o)
{
    dhf_extract_options eo = {.shard = {0, 1}, .abort_after = o->abort_after};
    dhf_extract_summary sum;
    if (dhf_extract_run(&s->cfg, &eo, &sum) != 0)
        return dhf_err_wrap("stage %s (%s)", s->id, s->what);
    printf("  extracted %lld image(s) in %.1f s; %lld already cached -> %s\n",
           (long long)sum.extracted, sum.seconds, (long long)sum.already_done, sum.cache_path);
    return 0;
}

static int run_train(t1_stage *s, const dhf_table1_options *o)
{
    if (s->state == T1_STALE) {
        /* another configuration's run: kept beside, never overwritten */
        char aside[4400], stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(aside, sizeof aside, "%s.stale-%s", s->output, stamp);
        if (rename(s->output, aside) != 0)
            return dhf_err_set("%s holds a run of another configuration and cannot "
                               "be moved to %s: %s", s->output, aside, strerror(errno));
        printf("  %s holds a run of another configuration: moved to %s\n", s->output, aside);
    }
    dhf_train_options to = {.resume_dir = s->state == T1_RESUME ? s->output : NULL,
                            .progress = o->progress, .abort_at_step = o->abort_at_step};
    dhf_train_summary sum;
    if (dhf_train_run(&s->cfg, &to, &sum) != 0)
        return dhf_err_wrap("stage %s (%s)", s->id, s->what);
    printf("  trained steps %lld..%lld of %lld in %.1f s", (long long)sum.start_step + 1,
           (long long)sum.steps_done, (long long)sum.total_steps, sum.seconds);
    if (sum.has_best)
        printf("; best val %s %.2f at step %lld", sum.best_metric, 100.0 * sum.best_value,
               (long long)sum.best_step);
    printf(" -> %s\n", sum.run_dir);
    return 0;
}

static int run_eval(t1_stage *s, const dhf_table1_options *o)
{
    dhf_eval_request rq = {.provider = s->row->provider,
                           .checkpoint = s->checkpoint[0] ? s->checkpoint : NULL,
                           .split = s->cfg.split, .out_dir = s->output,
                           .dump_predictions = true, .progress = o->progress};
    dhf_eval_result res;
    char label[512];
    if (dhf_eval_command(&s->cfg, &rq, &res, label, sizeof label) != 0)
        return dhf_err_wrap("stage %s (%s)", s->id, s->what);
    printf("  %s [%s]\n", res.summary, label);
    dhf_eval_result_free(&res);
    return 0;
}

static int run_stage(const t1_plan *p, t1_stage *s, const dhf_table1_options *o)
{
    int rc;
    if (s->kind == T1_TRAIN && write_record(p, s, "running") != 0)
        return -1;
    if (s->kind == T1_EXTRACT)
        rc = run_extract(s, o);
    else if (s->kind == T1_TRAIN)
        rc = run_train(s, o);
    else
        rc = run_eval(s, o);
    if (rc != 0)
        return -1;
    if (write_record(p, s, "done") != 0)
        return -1;
    s->state = T1_DONE;
    return 0;
}

int t1_plan_build(t1_plan *p, const dhf_config *cfg, const char *rows)
{
    memset(p, 0, sizeof *p);
    p->base = cfg;
    if (cfg->t1_out_dir[0])
        snprintf(p->out_dir, sizeof p->out_dir, "%s", cfg->t1_out_dir);
    else if (dhf_path_join(p->out_dir, sizeof p->out_dir, cfg->output_dir, "table1") != 0)
        return -1;
    if (dhf_path_join(p->stage_dir, sizeof p->stage_dir, p->out_dir, "stages") != 0)
        return -1;
    int rc = select_rows(p, rows);
    if (rc != 0)
        return rc;
    int i = 0;
    for (const t1_row *r = t1_rows; r->id; r++, i++) {
        if (!p->row_selected[i] || t1_row_unavailable(cfg, r))
            continue;
        for (int d = 0; d < T1_NDATASETS; d++) {
            if (d == T1_CUB && !cfg->t1_cub_root[0])
                continue;
            if (need_eval(p, r, d) < 0)
                return -1;
        }
    }
    /* stages run extract -> train -> eval, each group in the order planned */
    t1_stage *sorted = malloc((size_t)(p->n ? p->n : 1) * sizeof *sorted);
    int *where = malloc((size_t)(p->n ? p->n : 1) * sizeof *where);
    if (!sorted || !where) {
        free(sorted);
        free(where);
        return dhf_err_set("out of memory");
    }
    int m = 0;
    for (int k = T1_EXTRACT; k <= T1_EVAL; k++)
        for (int j = 0; j < p->n; j++)
            if ((int)p->stages[j].kind == k) {
                where[j] = m;
                sorted[m++] = p->stages[j];
            }
    for (int j = 0; j < m; j++)
        if (sorted[j].network_stage >= 0)
            sorted[j].network_stage = where[sorted[j].network_stage];
    memcpy(p->stages, sorted, (size_t)m * sizeof *sorted);
    free(sorted);
    free(where);
    for (int j = 0; j < p->n; j++)
        if (t1_stage_refresh(p, &p->stages[j]) != 0)
            return -1;
    return 0;
}

static void print_plan(const t1_plan *p, const dhf_config *cfg)
{
    printf("Table 1 plan -> %s (%d stage%s)\n", p->out_dir, p->n, p->n == 1 ? "" : "s");
    for (int i = 0; i < p->n; i++) {
        const t1_stage *s = &p->stages[i];
        printf("  [%-6s] %-58s %s\n", state_name(s->state), s->what, s->output);
    }
    int i = 0;
    for (const t1_row *r = t1_rows; r->id; r++, i++) {
        const char *why = t1_row_unavailable(cfg, r);
        if (p->row_selected[i] && why)
            printf("  [n/a   ] %-58s %s\n", r->name, why);
    }
    if (!cfg->t1_cub_root[0])
        printf("  [n/a   ] %-58s table1.cub_root is not set\n", "the CUB column");
}

void t1_plan_free(t1_plan *p)
{
    free(p->stages);
    p->stages = NULL;
    p->n = p->cap = 0;
}

/* The inputs the plan reads, checked before hours of work start: the first missing
 * one as an error (or, for a dry run, every one as a warning). */
static int preflight(const t1_plan *p, const dhf_config *cfg, bool warn_only)
{
    bool uses[T1_NMODELS] = {false}, cub = false;
    for (int i = 0; i < p->n; i++) {
        const t1_stage *s = &p->stages[i];
        if (s->kind == T1_EXTRACT)
            uses[strcmp(s->cfg.model_id, cfg->model_id) == 0 ? T1_SD15 : T1_SD21] = true;
        cub |= strcmp(s->cfg.dataset, "cub") == 0;
    }
    struct {
        bool needed;
        const char *key, *path, *what;
        bool dir;
    } in[] = {
        {uses[T1_SD15], "model_id", cfg->model_id, "a diffusers folder of SD-1.5", true},
        {uses[T1_SD21], "table1.model_sd21", cfg->t1_model_sd21,
         "a diffusers folder of SD-2.1-base", true},
        {p->n > 0, "data_root", cfg->data_root, "the SPair-71k folder", true},
        {cub, "table1.cub_root", cfg->t1_cub_root, "the CUB_200_2011 folder", true},
        {p->n > 0 && strcmp(cfg->t1_test_pairs, "full") != 0, "table1.test_pairs",
         cfg->t1_test_pairs, "a pair list (make -f Makefile.data dhf-annotations) or full",
         false},
    };
    for (int i = 0; i < p->n; i++) {
        const t1_stage *s = &p->stages[i];
        if (s->kind != T1_EVAL || s->row->model != T1_VIT || s->state == T1_DONE)
            continue;
        dhf_vit_config vc;
        char w[4200];
        bool dino = strcmp(s->row->id, "dino") == 0;
        if (dhf_vit_resolve(cfg, dino ? DHF_VIT_DINO : DHF_VIT_DINOV2, NULL, &vc, w, sizeof w) != 0) {
            if (!warn_only)
                return dhf_err_wrap("row %s", s->row->name);
            printf("  note: row %s: %s\n", s->row->name, dhf_err_msg());
            dhf_err_clear();
        }
    }
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        if (!in[i].needed || (in[i].dir ? dhf_is_dir(in[i].path) : dhf_path_exists(in[i].path)))
            continue;
        if (!warn_only)
            return dhf_err_set("%s '%s' does not exist (expected %s)", in[i].key,
                               in[i].path, in[i].what);
        printf("  note: %s '%s' does not exist yet (expected %s)\n", in[i].key, in[i].path,
               in[i].what);
    }
    return 0;
}

int dhf_table1_run(const dhf_config *cfg, const dhf_table1_options *o, dhf_table1_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    t1_plan p;
    int rc = t1_plan_build(&p, cfg, o->rows);
    if (rc != 0) {
        t1_plan_free(&p);
        return rc;
    }
    snprintf(sum->out_dir, sizeof sum->out_dir, "%s", p.out_dir);
    sum->stages = p.n;
    for (int i = 0; i < p.n; i++)
        sum->done_before += p.stages[i].state == T1_DONE;
    print_plan(&p, cfg);
    if (sum->done_before < p.n && preflight(&p, cfg, o->dry_run) != 0) {
        t1_plan_free(&p);
        return -1;
    }
    fflush(stdout);
    if (o->dry_run) {
        t1_plan_free(&p);
        return 0;
    }
    rc = 0;
    for (int i = 0; i < p.n && rc == 0; i++) {
        t1_stage *s = &p.stages[i];
        /* an evaluation's checkpoint may have been (re)made above */
        if (s->kind == T1_EVAL && (rc = t1_stage_refresh(&p, s)) != 0)
            break;
        if (s->state == T1_DONE)
            continue;
        printf("== [%d/%d] %s\n", i + 1, p.n, s->what);
        fflush(stdout);
        rc = run_stage(&p, s, o);
        sum->ran += rc == 0;
    }
    if (rc == 0)
        rc = t1_report(&p);
    t1_plan_free(&p);
    return rc;
}
