/* train_resume.c — the configuration of a resumed run: the run's own, with only
 * weight-neutral keys allowed to change (see dhf_train_resume_config in trainer.h). */
#include "train/trainer.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "train/checkpoint.h"

/* Keys that select hardware, file locations, logging or what validation measures:
 * none of them changes the weights a step produces. */
static const char *const resumable_keys[] = {
    "threads", "device", "val_every_n_steps", "checkpoint_every_n_steps", "max_epochs",
    "pck_threshold", "cache_path", "cache_dtype", "cache_compression", "data_root", "model_id",
    "load_resolution", "split", "test_path", "image_list", "run_name", "output_dir", NULL,
};

static bool resumable(const char *path)
{
    if (strncmp(path, "eval.", 5) == 0 || strncmp(path, "table1.", 7) == 0)
        return true;
    for (int i = 0; resumable_keys[i]; i++)
        if (strcmp(path, resumable_keys[i]) == 0)
            return true;
    return false;
}

static bool same_value(const dhf_cfg_key *k, const dhf_config *a, const dhf_config *b)
{
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
    switch (k->type) {
    case DHF_CFG_T_STRING:
    case DHF_CFG_T_ENUM:
        return strcmp(pa, pb) == 0;
    case DHF_CFG_T_INT_LIST: {
        const dhf_int_list *la = (const dhf_int_list *)pa, *lb = (const dhf_int_list *)pb;
        return la->n == lb->n && memcmp(la->v, lb->v, (size_t)la->n * sizeof la->v[0]) == 0;
    }
    case DHF_CFG_T_DOUBLE_LIST: {
        const dhf_double_list *la = (const dhf_double_list *)pa, *lb = (const dhf_double_list *)pb;
        if (la->n != lb->n)
            return false;
        for (int i = 0; i < la->n; i++)
            if (la->v[i] != lb->v[i])
                return false;
        return true;
    }
    case DHF_CFG_T_DOUBLE:
        return *(const double *)pa == *(const double *)pb;
    default:
        return memcmp(pa, pb, k->size) == 0;
    }
}

static void format_value(const dhf_cfg_key *k, const dhf_config *c, char *buf, size_t n)
{
    const char *p = (const char *)c + k->offset;
    size_t w = 0;
    switch (k->type) {
    case DHF_CFG_T_BOOL:
        snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false");
        break;
    case DHF_CFG_T_INT:
        snprintf(buf, n, "%d", *(const int *)p);
        break;
    case DHF_CFG_T_INT64:
        snprintf(buf, n, "%" PRId64, *(const int64_t *)p);
        break;
    case DHF_CFG_T_DOUBLE:
        snprintf(buf, n, "%.17g", *(const double *)p);
        break;
    case DHF_CFG_T_STRING:
    case DHF_CFG_T_ENUM:
        snprintf(buf, n, "\"%s\"", p);
        break;
    case DHF_CFG_T_INT_LIST: {
        const dhf_int_list *l = (const dhf_int_list *)p;
        w = (size_t)snprintf(buf, n, "[");
        for (int i = 0; i < l->n && w < n; i++)
            w += (size_t)snprintf(buf + w, n - w, "%s%" PRId64, i ? ", " : "", l->v[i]);
        if (w < n)
            snprintf(buf + w, n - w, "]");
        break;
    }
    case DHF_CFG_T_DOUBLE_LIST: {
        const dhf_double_list *l = (const dhf_double_list *)p;
        w = (size_t)snprintf(buf, n, "[");
        for (int i = 0; i < l->n && w < n; i++)
            w += (size_t)snprintf(buf + w, n - w, "%s%g", i ? ", " : "", l->v[i]);
        if (w < n)
            snprintf(buf + w, n - w, "]");
        break;
    }
    }
}

/* The run's configuration: its last checkpoint's, else its config.resolved.yaml. */
static int run_config(const char *run_dir, dhf_config *cfg)
{
    char ckpt[4200], yaml[4200];
    if (dhf_path_join(ckpt, sizeof ckpt, run_dir, "last.safetensors") != 0 ||
        dhf_path_join(yaml, sizeof yaml, run_dir, "config.resolved.yaml") != 0)
        return -1;
    if (dhf_path_exists(ckpt)) {
        dhf_ckpt_meta m;
        dhf_ckpt_meta_init(&m);
        int rc = dhf_ckpt_read_meta(ckpt, &m);
        if (rc == 0)
            rc = dhf_ckpt_meta_config(&m, cfg);
        dhf_ckpt_meta_free(&m);
        return rc;
    }
    if (dhf_path_exists(yaml)) {
        dhf_config_defaults(cfg);
        return dhf_config_load_file(cfg, yaml);
    }
    return dhf_err_set("--resume %s: not a dhf train run folder (it holds neither "
                       "last.safetensors nor config.resolved.yaml)", run_dir);
}

int dhf_train_resume_config(const char *run_dir, const char *const *files, int n_files,
                            const char *const *sets, int n_sets, dhf_config *out)
{
    if (!dhf_is_dir(run_dir))
        return dhf_err_set("--resume %s: no such folder", run_dir);
    dhf_config run, now;
    if (run_config(run_dir, &run) != 0)
        return dhf_err_wrap("--resume %s", run_dir);
    now = run;
    for (int i = 0; i < n_files; i++)
        if (dhf_config_load_file(&now, files[i]) != 0)
            return -1;
    for (int i = 0; i < n_sets; i++)
        if (dhf_config_set(&now, sets[i]) != 0)
            return -1;
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        if (resumable(k->path) || same_value(k, &run, &now))
            continue;
        char a[512], b[512];
        format_value(k, &now, a, sizeof a);
        format_value(k, &run, b, sizeof b);
        return dhf_err_set("--resume %s: key '%s' is %s here but %s in the run; a resumed run "
                           "continues with its own settings (only hardware, paths, logging "
                           "and validation keys may change: threads, device, "
                           "val_every_n_steps, checkpoint_every_n_steps, max_epochs, "
                           "pck_threshold, cache_path, data_root, model_id, eval.*, table1.*)",
                           run_dir, k->path, a, b);
    }
    /* the folder is the run: its name and parent win over any setting */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", run_dir);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        dir[--len] = '\0';
    const char *base = dhf_basename(dir);
    snprintf(now.run_name, sizeof now.run_name, "%s", base);
    if (base == dir)
        snprintf(now.output_dir, sizeof now.output_dir, ".");
    else
        snprintf(now.output_dir, sizeof now.output_dir, "%.*s", (int)(base - dir - 1 > 0 ? base - dir - 1 : 1), dir);
    *out = now;
    return 0;
}
