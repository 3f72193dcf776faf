/* trainer.c — the training loop of `dhf train` (see trainer.h): setup from the
 * config and the feature cache, steps, validation, checkpoints, resume. */
#include "train/trainer.h"

#include <math.h>
#include <fcntl.h>
#include <sys/file.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/jsonl.h"
#include "core/progress.h"
#include "train/agg_engine.h"
#include "train/aggregator.h"
#include "train/cache_check.h"
#include "train/checkpoint.h"
#include "train/heatmap.h"
#include "train/optim.h"
#include "train/pair_sampler.h"
#include "core/torch/shim_try.h"
#include "train/step.h"
#include "train/train_data.h"
#include "train/train_device.h"
#include "train/train_metrics.h"
#include "train/train_state.h"
#include "train/validate.h"

#define PATH_CAP 4200
#define FEATURES_JSON_CAP 65536

typedef struct {
    dhf_config cfg;                 /* the run's configuration (run_name filled in) */
    char run_dir[4096];
    char last_path[PATH_CAP], best_path[PATH_CAP], heat_dir[PATH_CAP], metrics_path[PATH_CAP];
    dhf_device dev;
    dhf_agg_order order;
    dhf_feature_cache *cache;
    dhf_cache_identity cache_id;   /* of the open cache (features_json borrowed) */
    dhf_train_pairs train, val;
    dhf_pair_sampler sampler;
    dhf_aggregator net;
    dhf_runner *runner;             /* the CPU engine, where it runs the network */
    dhf_agg_adamw opt;
    bool net_ready, opt_ready;
    dhf_tensor acc[DHF_AGG_MAX_PARAMS];   /* gradient sums of a multi-pair step */
    dhf_train_progress pr;
    dhf_jsonl log;
    int64_t last_ckpt_step;             /* step of last.safetensors; -1 = none */
    int64_t *src_idx, *trg_idx;
    int lock_fd;                        /* flock'ed <parent>/.<run>.train.lock, or -1 */
} trainer;

static void trainer_free(trainer *t)
{
    dhf_jsonl_close(&t->log);
    for (int i = 0; i < DHF_AGG_MAX_PARAMS; i++)
        dhf_free(t->acc[i]);
    if (t->opt_ready)
        dhf_agg_adamw_free(&t->opt);
    if (t->net_ready)
        dhf_aggregator_free(&t->net);
    dhf_runner_free(t->runner);
    dhf_pair_sampler_free(&t->sampler);
    dhf_train_pairs_free(&t->train);
    dhf_train_pairs_free(&t->val);
    dhf_cache_close(t->cache);
    free(t->src_idx);
    free(t->trg_idx);
    if (t->lock_fd >= 0)
        close(t->lock_fd);   /* releases the lock; the file stays (no unlink race) */
}

int dhf_train_run_dir(const dhf_config *cfg, const char *config_path, char *run_name,
                      size_t name_cap, char *run_dir, size_t dir_cap)
{
    if (cfg->run_name[0]) {
        snprintf(run_name, name_cap, "%s", cfg->run_name);
    } else {
        char stem[256] = "run";
        if (config_path && config_path[0]) {
            snprintf(stem, sizeof stem, "%s", dhf_basename(config_path));
            char *dot = strrchr(stem, '.');
            if (dot && dot != stem)
                *dot = '\0';
        }
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(run_name, name_cap, "%s-%s", stem, stamp);
    }
    if (strchr(run_name, '/'))
        return dhf_err_set("run_name '%s': a folder name, without '/'", run_name);
    return dhf_path_join(run_dir, dir_cap, cfg->output_dir, run_name);
}

static int join(char *out, const char *dir, const char *leaf)
{
    return dhf_path_join(out, PATH_CAP, dir, leaf);
}

/* ---- setup ------------------------------------------------------------------ */

static int setup_paths(trainer *t, const dhf_train_options *opt)
{
    if (opt->resume_dir) {
        snprintf(t->run_dir, sizeof t->run_dir, "%s", opt->resume_dir);
        size_t len = strlen(t->run_dir);
        while (len > 1 && t->run_dir[len - 1] == '/')
            t->run_dir[--len] = '\0';
    } else {
        char name[DHF_CFG_STR];
        if (dhf_train_run_dir(&t->cfg, opt->config_path, name, sizeof name, t->run_dir,
                              sizeof t->run_dir) != 0)
            return -1;
        snprintf(t->cfg.run_name, sizeof t->cfg.run_name, "%s", name);
    }
    if (join(t->last_path, t->run_dir, "last.safetensors") || join(t->best_path, t->run_dir,
        "best.safetensors") || join(t->heat_dir, t->run_dir, "heatmaps") ||
        join(t->metrics_path, t->run_dir, "metrics.jsonl"))
        return -1;
    /* one dhf train per run folder: a second process refuses at once. The lock lives
     * beside the folder (<parent>/.<name>.train.lock), so a refused run writes nothing
     * into a folder of its own. */
    char lock[PATH_CAP + 64], parent[PATH_CAP];
    snprintf(parent, sizeof parent, "%s", t->run_dir);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : parent;
    if (slash == parent)
        snprintf(lock, sizeof lock, "/.%.200s.train.lock", base);
    else if (slash)
        *slash = '\0', snprintf(lock, sizeof lock, "%.3800s/.%.200s.train.lock", parent, base);
    else
        snprintf(lock, sizeof lock, ".%.200s.train.lock", base);
    if (slash && slash != parent && dhf_mkdir_p(parent) != 0)
        return -1;
    t->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (t->lock_fd < 0)
        return dhf_err_set("%s: cannot create %s: %s", t->run_dir, lock, strerror(errno));
    if (flock(t->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(t->lock_fd);
        t->lock_fd = -1;
        return e == EWOULDBLOCK
                   ? dhf_err_set("run folder %s: another dhf train is running on it (lock %s "
                                 "is held)", t->run_dir, lock)
                   : dhf_err_set("%s: cannot lock %s: %s", t->run_dir, lock, strerror(e));
    }
    if (!opt->resume_dir && (dhf_path_exists(t->last_path) || dhf_path_exists(t->metrics_path)))
        return dhf_err_set("run folder %s already holds a run; continue it with --resume %s or "
                           "choose another run_name", t->run_dir, t->run_dir);
    return 0;
}

static int setup_network(trainer *t)
{
    const dhf_cache_layout *l = dhf_cache_get_layout(t->cache);
    if (l->num_layers > DHF_AGG_MAX_LAYERS)
        return dhf_err_set("%s: %d layers; the network takes at most %d",
                           dhf_cache_path(t->cache), l->num_layers, DHF_AGG_MAX_LAYERS);
    dhf_agg_config ac = { 0 };
    ac.num_layers = l->num_layers;
    ac.num_timesteps = l->num_steps;
    ac.proj_dim = t->cfg.projection_dim;
    ac.out_res = t->cfg.output_resolution;
    for (int i = 0; i < l->num_layers; i++)
        ac.channels[i] = (int)l->layer_chw[i][0];
    dhf_dtype compute = DHF_F32;
    dhf_engine_options eo;
    if (dhf_agg_options_from_config(&t->cfg, t->dev, &ac, &compute) != 0 ||
        dhf_engine_options_from_config(&t->cfg, &eo) != 0 ||
        dhf_runner_create(&t->runner, &eo) != 0)
        return -1;
    if (dhf_aggregator_init(&t->net, &ac, (uint64_t)t->cfg.seed) != 0)
        return dhf_err_wrap("aggregation network");
    t->net_ready = true;
    if (dhf_aggregator_set_compute_dtype(&t->net, compute) != 0)
        return -1;
    /* the paper's two groups (mixing weights; bottlenecks), equal settings by default */
    dhf_adamw_hparams hp = dhf_adamw_defaults();
    hp.lr = t->cfg.lr;
    hp.weight_decay = t->cfg.weight_decay;
    if (dhf_agg_adamw_init(&t->opt, &t->net, &hp) != 0)
        return -1;
    t->opt_ready = true;
    return 0;
}

static void init_progress(trainer *t)
{
    dhf_train_progress *pr = &t->pr;
    memset(pr, 0, sizeof *pr);
    pr->rng = dhf_pair_sampler_rng_after(&t->sampler, 0);
    snprintf(pr->best_metric, sizeof pr->best_metric, "%s", t->cfg.checkpoint_metric);
    pr->best_step = -1;
    pr->steps_per_epoch = t->sampler.steps_per_epoch;
    pr->total_steps = dhf_pair_sampler_total_steps(&t->sampler);
    pr->batch_size = t->cfg.batch_size;
    pr->train_pairs = (long)t->train.ds.n_pairs;
    pr->val_pairs = (long)t->val.ds.n_pairs;
    snprintf(pr->train_hash, sizeof pr->train_hash, "%s", t->train.ds.subset.hash);
    snprintf(pr->val_hash, sizeof pr->val_hash, "%s", t->val.ds.subset.hash);
}

/* The restored state belongs to this cache, data and data order. */
static int check_restored(trainer *t, const dhf_train_progress *loaded,
                          const dhf_cache_identity *trained_on)
{
    char want[PATH_CAP + 16], have[PATH_CAP + 16];
    snprintf(want, sizeof want, "checkpoint %s", t->last_path);
    snprintf(have, sizeof have, "feature cache %s", dhf_cache_path(t->cache));
    if (dhf_cache_identity_check(trained_on, want, &t->cache_id, have) != 0 ||
        dhf_train_progress_check_layout(loaded, &t->pr, t->last_path) != 0)
        return -1;
    dhf_train_rng expect = dhf_pair_sampler_rng_after(&t->sampler, loaded->step);
    if (loaded->rng.seed != expect.seed || loaded->rng.counter != expect.counter)
        return dhf_err_set("%s: data-order generator at seed %llu counter %llu, but this config "
                           "gives seed %llu counter %llu at step %lld (seed changed?)",
                           t->last_path, (unsigned long long)loaded->rng.seed,
                           (unsigned long long)loaded->rng.counter,
                           (unsigned long long)expect.seed, (unsigned long long)expect.counter,
                           (long long)loaded->step);
    if (loaded->step > t->pr.total_steps)
        return dhf_err_set("%s: the run is at step %lld, beyond this config's %lld steps "
                           "(max_epochs %d x %lld steps per epoch)", t->last_path,
                           (long long)loaded->step, (long long)t->pr.total_steps,
                           t->cfg.max_epochs, (long long)t->pr.steps_per_epoch);
    return 0;
}

/* Continues from last.safetensors when the run has one. */
static int restore(trainer *t)
{
    t->last_ckpt_step = -1;
    if (!dhf_path_exists(t->last_path))
        return 0;
    dhf_train_progress loaded;
    dhf_cache_identity trained_on;
    char *features = malloc(FEATURES_JSON_CAP);
    if (!features)
        return dhf_err_set("out of memory");
    int rc = dhf_train_state_load(t->last_path, &t->net, &t->opt, &loaded, &trained_on, features,
                                  FEATURES_JSON_CAP);
    if (rc == 0)
        rc = check_restored(t, &loaded, &trained_on);
    free(features);
    if (rc != 0)
        return -1;
    t->pr.step = loaded.step;
    t->pr.epoch = loaded.epoch;
    t->pr.rng = loaded.rng;
    t->pr.has_best = loaded.has_best;
    if (loaded.has_best) {
        t->pr.best_value = loaded.best_value;
        t->pr.best_step = loaded.best_step;
    }
    t->last_ckpt_step = loaded.step;
    return 0;
}

/* Parameters, and the AdamW moments and step count when the file has them, from a
 * checkpoint of the same network (shapes checked by dhf_ckpt_load). */
static int init_from(trainer *t, const char *path)
{
    dhf_ckpt_meta meta;
    if (dhf_ckpt_read_meta(path, &meta) != 0)
        return -1;
    const bool moments = meta.has_optim;
    const int64_t optim_step = meta.optim_step;
    dhf_ckpt_meta_free(&meta);
    dhf_ckpt_entry entries[DHF_AGG_MAX_PARAMS];
    for (int i = 0; i < t->net.num_params; i++)
        entries[i] = (dhf_ckpt_entry){ .name = t->net.names[i], .param = t->net.params[i],
                                       .exp_avg = moments ? t->opt.exp_avg[i] : NULL,
                                       .exp_avg_sq = moments ? t->opt.exp_avg_sq[i] : NULL };
    if (dhf_ckpt_load(path, entries, t->net.num_params, NULL) != 0)
        return -1;
    if (moments)
        t->opt.step = optim_step;
    fprintf(stderr, "train: starting from %s (parameters%s)\n", path,
            moments ? ", AdamW moments and step count" : "; fresh AdamW state");
    return 0;
}

static int setup(trainer *t, const dhf_train_options *opt)
{
    if (setup_paths(t, opt) != 0)
        return -1;
    if (dhf_train_parse_device(t->cfg.device, "device", &t->dev) != 0 ||
        dhf_agg_order_parse(t->cfg.aggregation_order, &t->order) != 0)
        return -1;
    if (!dhf_path_exists(t->cfg.cache_path))
        return dhf_err_set("cache_path %s: no such file; cache the features first with "
                           "`dhf extract CONFIG --set split=trn` and `... --set split=val`",
                           t->cfg.cache_path);
    if (dhf_cache_open_read(t->cfg.cache_path, 4, &t->cache) != 0)
        return -1;
    char cfg_name[PATH_CAP];
    snprintf(cfg_name, sizeof cfg_name, "%s",
             opt->config_path ? opt->config_path : opt->resume_dir ? t->run_dir : "(defaults)");
    if (dhf_train_check_cache(&t->cfg, cfg_name, t->cache) != 0 ||
        dhf_cache_identity_from_layout(dhf_cache_get_layout(t->cache), &t->cache_id) != 0)
        return -1;
    if (dhf_train_pairs_load(&t->cfg, DHF_TRAIN_SET, t->cache, &t->train) != 0 ||
        dhf_train_pairs_load(&t->cfg, DHF_VAL_SET, t->cache, &t->val) != 0)
        return -1;
    if (dhf_pair_sampler_init(&t->sampler, t->train.ds.n_pairs, t->cfg.batch_size,
                              t->cfg.max_steps_per_epoch, t->cfg.max_epochs,
                              dhf_train_data_seed(t->cfg.seed)) != 0)
        return -1;
    int max_kps = 1;
    for (size_t i = 0; i < t->train.ds.n_pairs; i++)
        if (t->train.ds.pairs[i].n_kps > max_kps)
            max_kps = t->train.ds.pairs[i].n_kps;
    t->src_idx = malloc((size_t)max_kps * sizeof *t->src_idx);
    t->trg_idx = malloc((size_t)max_kps * sizeof *t->trg_idx);
    if (!t->src_idx || !t->trg_idx)
        return dhf_err_set("out of memory");
    if (setup_network(t) != 0)
        return -1;
    init_progress(t);
    t->last_ckpt_step = -1;
    if (opt->resume_dir && restore(t) != 0)
        return dhf_err_wrap("--resume %s", t->run_dir);
    if (!opt->resume_dir && opt->init_from && init_from(t, opt->init_from) != 0)
        /* the reader's message names the file already */
        return strstr(dhf_err_msg(), opt->init_from) ? dhf_err_wrap("--init")
                                                     : dhf_err_wrap("--init %s", opt->init_from);
    if (dhf_train_to_device(&t->net, &t->opt, t->dev) != 0)
        return -1;
    if (t->cfg.batch_size > 1)
        for (int i = 0; i < t->net.num_params; i++) {
            int64_t shape[DHF_MAX_DIMS];
            int nd;
            DHF_TRY(dhf_shape(t->net.params[i], shape, &nd), t->net.names[i]);
            DHF_TRY(dhf_zeros(DHF_F32, t->dev, shape, nd, &t->acc[i]), "gradient sums");
        }
    if (dhf_mkdir_p(t->run_dir) != 0 || dhf_mkdir_p(t->heat_dir) != 0 ||
        dhf_config_write_resolved(&t->cfg, t->run_dir) != 0)
        return -1;
    return dhf_train_metrics_open(&t->log, t->metrics_path, t->pr.step > 0 ? t->pr.step : 0, NULL);
fail:
    return -1;
}

/* ---- one step ----------------------------------------------------------------- */

/* grads = (acc + grads) / n after the last pair of an n-pair step; before it,
 * acc = grads (first pair) or acc += grads. */
static int accumulate_grads(trainer *t, int j, int n)
{
    for (int i = 0; i < t->net.num_params; i++) {
        dhf_tensor g = NULL;
        DHF_TRY(dhf_grad(t->net.params[i], &g), "gradient");
        if (!g)
            continue;
        dhf_status st;
        if (j == n - 1) {
            st = dhf_add_(g, t->acc[i]);
            if (st == DHF_OK)
                st = dhf_mul_scalar_(g, 1.0 / n);
        } else {
            st = j == 0 ? dhf_copy_(t->acc[i], g) : dhf_add_(t->acc[i], g);
        }
        dhf_free(g);
        DHF_TRY(st, "gradient accumulation");
    }
    return 0;
fail:
    return -1;
}

/* One optimiser step on the pairs of step s; rec gets the means of their losses. */
static int train_step(trainer *t, int64_t s, dhf_train_record *rec)
{
    size_t idx[1024];
    int n = 0;
    if (dhf_pair_sampler_batch(&t->sampler, s, idx, &n, &rec->epoch) != 0)
        return -1;
    const int L = t->net.cfg.num_layers;
    rec->pairs = n;
    rec->keypoints = 0;
    rec->loss = rec->loss_src = rec->loss_trg = 0;
    for (int j = 0; j < n; j++) {
        const dhf_pair *p = &t->train.ds.pairs[idx[j]];
        int64_t rows[2] = { t->train.src_row[idx[j]], t->train.trg_row[idx[j]] };
        int K = dhf_train_pair_indices(p, t->net.cfg.out_res, t->src_idx, t->trg_idx);
        dhf_tensor feats[DHF_AGG_MAX_LAYERS];
        if (dhf_train_read_features(t->cache, rows, 2, t->dev, feats) != 0)
            return dhf_err_wrap("pair %s", p->id);
        dhf_step_stats st;
        int rc = n == 1 ? dhf_train_step(&t->net, t->runner, &t->opt, t->order, feats, t->src_idx,
                                         t->trg_idx, K, &st)
                        : dhf_pair_backward(&t->net, t->runner, t->order, feats, t->src_idx, t->trg_idx, K,
                                            &st);
        for (int l = 0; l < L; l++)
            dhf_free(feats[l]);
        if (rc != 0)
            return dhf_err_wrap("pair %s", p->id);
        if (n > 1 && accumulate_grads(t, j, n) != 0)
            return -1;
        rec->loss += st.loss / n;
        rec->loss_src += st.loss_src / n;
        rec->loss_trg += st.loss_trg / n;
        rec->keypoints += K;
    }
    if (n > 1 && dhf_agg_adamw_step(&t->opt, &t->net) != 0)
        return -1;
    return 0;
}

/* ---- validation, checkpoints -------------------------------------------------- */

static int write_heatmap(trainer *t, int64_t s)
{
    const dhf_agg_config *c = &t->net.cfg;
    int n = c->num_layers * c->num_timesteps;
    float *raw = malloc((size_t)n * sizeof *raw), *w = malloc((size_t)n * sizeof *w);
    int rc = -1;
    if (!raw || !w) {
        dhf_err_set("out of memory");
        goto done;
    }
    if (dhf_to_buffer(t->net.mixing_weights, DHF_F32, raw, (size_t)n * sizeof *raw) != DHF_OK) {
        dhf_err_set("mixing weights: %s", dhf_last_error());
        goto done;
    }
    char leaf[64], path[PATH_CAP];
    snprintf(leaf, sizeof leaf, "mixing_step_%06lld.png", (long long)s);
    if (join(path, t->heat_dir, leaf) != 0 || dhf_heatmap_softmax(raw, n, w) != 0 ||
        dhf_heatmap_write_for_config(w, c->num_layers, &t->cfg, s, path) != 0)
        goto done;
    rc = 0;
done:
    free(raw);
    free(w);
    return rc;
}

static int save_last(trainer *t, int64_t s, int epoch)
{
    t->pr.step = s;
    t->pr.epoch = epoch;
    t->pr.rng = dhf_pair_sampler_rng_after(&t->sampler, s);
    if (dhf_train_state_save(t->last_path, &t->net, &t->opt, &t->cfg, &t->cache_id, &t->pr) != 0)
        return -1;
    t->last_ckpt_step = s;
    return 0;
}

/* Validation at step s: metrics line, heatmap, best.safetensors when improved. */
static int validate_step(trainer *t, int64_t s, int epoch, dhf_val_result *vr, bool *improved)
{
    if (dhf_train_validate(&t->val.ds, &t->net, t->runner, t->order, t->cache, t->dev, &t->cfg, vr) != 0)
        return -1;
    double v = dhf_val_metric(vr, t->cfg.checkpoint_metric);
    *improved = !t->pr.has_best || v > t->pr.best_value;
    if (*improved) {
        t->pr.has_best = true;
        t->pr.best_value = v;
        t->pr.best_step = s;
    }
    dhf_val_record r = { .step = s, .val = vr, .alpha = t->cfg.pck_threshold,
                         .metric = t->cfg.checkpoint_metric, .best = *improved,
                         .best_value = t->pr.best_value, .best_step = t->pr.best_step };
    if (dhf_train_metrics_write_val(&t->log, &r) != 0 || write_heatmap(t, s) != 0)
        return -1;
    if (*improved) {
        t->pr.step = s;
        t->pr.epoch = epoch;
        t->pr.rng = dhf_pair_sampler_rng_after(&t->sampler, s);
        if (dhf_train_state_save(t->best_path, &t->net, &t->opt, &t->cfg, &t->cache_id,
                                 &t->pr) != 0)
            return -1;
    }
    return 0;
}

/* ---- the loop ----------------------------------------------------------------- */

static int stopped(trainer *t, int64_t s)
{
    char where[PATH_CAP + 64];
    if (t->last_ckpt_step >= 0)
        snprintf(where, sizeof where, "the last good checkpoint is %s (step %lld)", t->last_path,
                 (long long)t->last_ckpt_step);
    else
        snprintf(where, sizeof where, "no checkpoint was written yet");
    return dhf_err_wrap("step %lld stopped the run; %s", (long long)s, where);
}

static int run_loop(trainer *t, const dhf_train_options *opt, dhf_train_summary *sum)
{
    const int64_t total = t->pr.total_steps, start = t->pr.step;
    dhf_progress prog;
    bool prog_on = opt->progress && total > start;
    if (prog_on) {
        dhf_progress_begin(&prog, "train", total - start);
        dhf_progress_set_unit(&prog, "step");
    }
    if (opt->progress && total > start) {
        /* which implementation runs the steps (the same gradients either way) */
        const bool onednn = t->order == DHF_AGG_FAST && dhf_agg_engine_ready(&t->net, t->runner);
        fprintf(stderr, "train: %s order on %s, %s convolutions; run folder %s\n",
                dhf_agg_order_name(t->order),
                onednn ? "oneDNN (src/engine/fastnet.c)" : "libtorch autograd",
                t->net.bneck[0].compute_dtype == DHF_BF16   ? "bf16"
                : t->net.bneck[0].compute_dtype == DHF_F16 ? "fp16"
                                                           : "float32",
                t->run_dir);
    }
    double t0 = dhf_now();
    char val_note[128] = "";
    int rc = 0;
    for (int64_t s = start + 1; s <= total; s++) {
        dhf_train_record rec = { .step = s, .lr = t->opt.mixing.lr };
        dhf_scope_begin();
        int step_rc = train_step(t, s, &rec);
        dhf_scope_end();
        if (step_rc != 0) {
            rc = stopped(t, s);
            break;
        }
        double el = dhf_now() - t0;
        rec.elapsed_s = el;
        rec.steps_per_s = el > 0 ? (double)(s - start) / el : 0.0;
        sum->last_loss = rec.loss;
        sum->steps_done = s;
        if (dhf_train_metrics_write_train(&t->log, &rec) != 0) {
            rc = -1;
            break;
        }
        bool val_now = s % t->cfg.val_every_n_steps == 0 || s == total;
        bool ckpt_now = val_now || s == total ||
                        (t->cfg.checkpoint_every_n_steps > 0 &&
                         s % t->cfg.checkpoint_every_n_steps == 0);
        if (val_now) {
            dhf_val_result vr;
            bool improved = false;
            if (validate_step(t, s, rec.epoch, &vr, &improved) != 0) {
                rc = stopped(t, s);
                break;
            }
            snprintf(val_note, sizeof val_note, " | val %s %.2f (best %.2f @ %lld)",
                     t->cfg.checkpoint_metric, 100.0 * dhf_val_metric(&vr, t->cfg.checkpoint_metric),
                     100.0 * t->pr.best_value, (long long)t->pr.best_step);
        }
        if (ckpt_now && save_last(t, s, rec.epoch) != 0) {
            rc = stopped(t, s);
            break;
        }
        if (prog_on) {
            char note[256];
            snprintf(note, sizeof note, "step %lld/%lld loss %.4f%s", (long long)s,
                     (long long)total, rec.loss, val_note);
            dhf_progress_step(&prog, 1, note);
        }
        if (opt->abort_at_step > 0 && s == opt->abort_at_step) {
            fflush(NULL);
            _exit(DHF_TRAIN_TEST_ABORT_STATUS);
        }
    }
    if (prog_on)
        dhf_progress_end(&prog);
    return rc;
}

int dhf_train_run(const dhf_config *cfg, const dhf_train_options *opt, dhf_train_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    sum->last_loss = NAN;
    double t0 = dhf_now();
    trainer *t = calloc(1, sizeof *t);
    if (!t)
        return dhf_err_set("out of memory");
    t->lock_fd = -1;
    t->cfg = *cfg;
    int rc = setup(t, opt);
    if (rc == 0) {
        snprintf(sum->run_dir, sizeof sum->run_dir, "%s", t->run_dir);
        sum->start_step = sum->steps_done = t->pr.step;
        sum->total_steps = t->pr.total_steps;
        sum->train_pairs = t->pr.train_pairs;
        sum->val_pairs = t->pr.val_pairs;
        rc = run_loop(t, opt, sum);
        sum->has_best = t->pr.has_best;
        snprintf(sum->best_metric, sizeof sum->best_metric, "%s", t->pr.best_metric);
        sum->best_value = t->pr.best_value;
        sum->best_step = t->pr.best_step;
    }
    trainer_free(t);
    free(t);
    sum->seconds = dhf_now() - t0;
    return rc;
}
