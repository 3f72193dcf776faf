/* train_state.c — training checkpoints: network + AdamW + data order + best metric
 * (see train_state.h). */
#include "train/train_state.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/torch/shim_try.h"

static int build_entries(const dhf_aggregator *a, const dhf_agg_adamw *opt,
                         dhf_ckpt_entry *entries)
{
    if (opt && opt->num_params != a->num_params)
        return dhf_err_set("checkpoint: AdamW state holds %d parameters, the network %d",
                           opt->num_params, a->num_params);
    for (int i = 0; i < a->num_params; i++)
        entries[i] = (dhf_ckpt_entry){
            .name = a->names[i],
            .param = a->params[i],
            .exp_avg = opt ? opt->exp_avg[i] : NULL,
            .exp_avg_sq = opt ? opt->exp_avg_sq[i] : NULL,
        };
    return 0;
}

static char *trainer_json(const dhf_train_progress *pr)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "epoch", pr->epoch);
    cJSON_AddNumberToObject(o, "steps_per_epoch", (double)pr->steps_per_epoch);
    cJSON_AddNumberToObject(o, "total_steps", (double)pr->total_steps);
    cJSON_AddNumberToObject(o, "batch_size", pr->batch_size);
    cJSON_AddNumberToObject(o, "train_pairs", (double)pr->train_pairs);
    cJSON_AddStringToObject(o, "train_subset_hash", pr->train_hash);
    cJSON_AddNumberToObject(o, "val_pairs", (double)pr->val_pairs);
    cJSON_AddStringToObject(o, "val_subset_hash", pr->val_hash);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int dhf_train_state_save(const char *path, const dhf_aggregator *a, const dhf_agg_adamw *opt,
                         const dhf_config *cfg, const dhf_cache_identity *cache_id,
                         const dhf_train_progress *pr)
{
    for (int i = 0; i < a->num_params; i++) {
        bool finite = false;
        if (dhf_isfinite_all(a->params[i], &finite) != DHF_OK)
            return dhf_err_set("%s: checking parameter %s: %s", path, a->names[i],
                               dhf_last_error());
        if (!finite)
            return dhf_err_set("parameter %s holds NaN or Inf values; %s was not written",
                               a->names[i], path);
    }
    dhf_ckpt_entry entries[DHF_AGG_MAX_PARAMS];
    if (build_entries(a, opt, entries) != 0)
        return -1;
    char *config_json = dhf_config_to_json(cfg);
    char *tj = trainer_json(pr);
    if (!config_json || !tj) {
        free(config_json);
        free(tj);
        return dhf_err_set("%s: out of memory building the metadata", path);
    }
    dhf_ckpt_meta m;
    dhf_ckpt_meta_init(&m);
    m.step = pr->step;
    snprintf(m.run_name, sizeof m.run_name, "%s", cfg->run_name);
    m.config_json = config_json;
    snprintf(m.rng.algorithm, sizeof m.rng.algorithm, "splitmix64");
    m.rng.seed = pr->rng.seed;
    m.rng.counter = pr->rng.counter;
    m.rng.num_words = 0;
    m.has_best = pr->has_best;
    if (pr->has_best) {
        snprintf(m.best_metric, sizeof m.best_metric, "%s", pr->best_metric);
        m.best_value = pr->best_value;
        m.best_step = pr->best_step;
    }
    if (cache_id) {
        m.has_cache = true;
        m.cache = *cache_id;
    }
    m.trainer_json = tj;
    m.optim_step = opt ? opt->step : 0;
    int rc = dhf_ckpt_save(path, entries, a->num_params, &m);
    free(config_json);
    free(tj);
    return rc;
}

static int json_num(const cJSON *o, const char *key, const char *path, double *out)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(e))
        return dhf_err_set("%s: metadata trainer_state: '%s' missing or not a number", path, key);
    *out = e->valuedouble;
    return 0;
}

static int json_hash(const cJSON *o, const char *key, const char *path, char out[17])
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(e) || strlen(e->valuestring) > 16)
        return dhf_err_set("%s: metadata trainer_state: '%s' missing or not a 16-digit hash",
                           path, key);
    snprintf(out, 17, "%s", e->valuestring);
    return 0;
}

static int parse_trainer_json(const char *text, const char *path, dhf_train_progress *pr)
{
    cJSON *o = cJSON_Parse(text ? text : "");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return dhf_err_set("%s: metadata trainer_state is not a JSON object (not a dhf train "
                           "checkpoint?)", path);
    }
    double epoch = 0, spe = 0, total = 0, bs = 0, ntr = 0, nval = 0;
    int rc = json_num(o, "epoch", path, &epoch) || json_num(o, "steps_per_epoch", path, &spe) ||
             json_num(o, "total_steps", path, &total) || json_num(o, "batch_size", path, &bs) ||
             json_num(o, "train_pairs", path, &ntr) || json_num(o, "val_pairs", path, &nval) ||
             json_hash(o, "train_subset_hash", path, pr->train_hash) ||
             json_hash(o, "val_subset_hash", path, pr->val_hash);
    cJSON_Delete(o);
    if (rc)
        return -1;
    pr->epoch = (int)epoch;
    pr->steps_per_epoch = (int64_t)spe;
    pr->total_steps = (int64_t)total;
    pr->batch_size = (int)bs;
    pr->train_pairs = (long)ntr;
    pr->val_pairs = (long)nval;
    return 0;
}

int dhf_train_state_load(const char *path, dhf_aggregator *a, dhf_agg_adamw *opt,
                         dhf_train_progress *pr, dhf_cache_identity *cache_id,
                         char *features_buf, size_t features_cap)
{
    dhf_ckpt_entry entries[DHF_AGG_MAX_PARAMS];
    if (build_entries(a, opt, entries) != 0)
        return -1;
    dhf_ckpt_meta m;
    dhf_ckpt_meta_init(&m);
    if (dhf_ckpt_load(path, entries, a->num_params, &m) != 0)
        return -1;
    int rc = -1;
    memset(pr, 0, sizeof *pr);
    if (opt && !m.has_optim) {
        dhf_err_set("%s: the checkpoint holds no AdamW state, so training cannot continue "
                    "from it exactly", path);
        goto done;
    }
    if (strcmp(m.rng.algorithm, "splitmix64") != 0) {
        dhf_err_set("%s: data-order generator '%s' (expected splitmix64)", path, m.rng.algorithm);
        goto done;
    }
    if (parse_trainer_json(m.trainer_json, path, pr) != 0)
        goto done;
    pr->step = m.step;
    pr->rng.seed = m.rng.seed;
    pr->rng.counter = m.rng.counter;
    pr->has_best = m.has_best;
    if (m.has_best) {
        snprintf(pr->best_metric, sizeof pr->best_metric, "%s", m.best_metric);
        pr->best_value = m.best_value;
        pr->best_step = m.best_step;
    }
    if (opt)
        opt->step = m.optim_step;
    if (cache_id) {
        if (!m.has_cache) {
            dhf_err_set("%s: the checkpoint records no feature-cache identity", path);
            goto done;
        }
        *cache_id = m.cache;
        const char *fj = m.cache.features_json ? m.cache.features_json : "{}";
        if (!features_buf || strlen(fj) >= features_cap) {
            dhf_err_set("%s: cache identity features JSON too long (%zu bytes)", path,
                        strlen(fj));
            goto done;
        }
        memcpy(features_buf, fj, strlen(fj) + 1);
        cache_id->features_json = features_buf;
    }
    rc = 0;
done:
    dhf_ckpt_meta_free(&m);
    return rc;
}

int dhf_train_progress_check_layout(const dhf_train_progress *run, const dhf_train_progress *now,
                                    const char *path)
{
#define SAME(field, what)                                                                   \
    if (run->field != now->field)                                                            \
        return dhf_err_set("%s: " what " differs from the run's: %lld now, %lld when it was " \
                           "trained; the run cannot continue exactly",                       \
                           path, (long long)now->field, (long long)run->field);
    SAME(steps_per_epoch, "steps per epoch")
    SAME(batch_size, "batch_size")
    SAME(train_pairs, "the number of training pairs")
    SAME(val_pairs, "the number of validation pairs")
#undef SAME
    if (strcmp(run->train_hash, now->train_hash) != 0)
        return dhf_err_set("%s: the training pairs differ from the run's (subset hash %s now, "
                           "%s when it was trained)", path, now->train_hash, run->train_hash);
    if (strcmp(run->val_hash, now->val_hash) != 0)
        return dhf_err_set("%s: the validation pairs differ from the run's (subset hash %s now, "
                           "%s when it was trained)", path, now->val_hash, run->val_hash);
    return 0;
}
