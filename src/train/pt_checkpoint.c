/* pt_checkpoint.c — import of the authors' torch.save checkpoints into dhf
 * checkpoints and export back (pt_checkpoint.h): the name and order tables, tensors
 * from storage records, the config mapping, AdamW state both ways. */
#include "train/pt_checkpoint.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/pickle.h"
#include "core/safetensors.h"
#include "core/str.h"
#include "core/torch/shim_try.h"
#include "train/bottleneck.h"
#include "train/checkpoint.h"

#define MAX_LAYERS 64
#define NAME_CAP 160

/* detectron2's BottleneckBlock registers shortcut, conv1, conv2, conv3: the order of
 * bottleneck_layers.parameters() and of its state_dict keys */
static const int torch_order[DHF_BNECK_NPARAMS] = {
    DHF_BN_SHORT_W, DHF_BN_SHORT_GN_W, DHF_BN_SHORT_GN_B,
    DHF_BN_CONV1_W, DHF_BN_CONV1_GN_W, DHF_BN_CONV1_GN_B,
    DHF_BN_CONV2_W, DHF_BN_CONV2_GN_W, DHF_BN_CONV2_GN_B,
    DHF_BN_CONV3_W, DHF_BN_CONV3_GN_W, DHF_BN_CONV3_GN_B,
};

/* the config keys of the authors' code that dhf exports (dhf's names are theirs) */
static const char *const paper_keys[] = {
    "model_id", "diffusion_mode", "num_timesteps", "save_timestep", "prompt",
    "negative_prompt", "guidance_scale", "projection_dim", "output_resolution",
    "load_resolution", "batch_size", "lr", "weight_decay", "max_epochs",
    "max_steps_per_epoch", "val_every_n_steps", "pck_threshold", "flip_timesteps",
};

static void torch_name(char *out, int l, int i)
{
    snprintf(out, NAME_CAP, "bottleneck_layers.%d.0.%s", l, dhf_bottleneck_param_names[i]);
}

static void dhf_name(char *out, int l, int i)
{
    snprintf(out, NAME_CAP, "bottlenecks.%d.%s", l, dhf_bottleneck_param_names[i]);
}

/* ---- reading a .pt --------------------------------------------------------------- */

typedef struct {
    const char *path;
    dhf_pt_archive *a;
    dhf_pv *root;
    struct {
        char key[64];
        void *data;
        size_t size;
    } st[1024];
    int nst;
} pt_file;

static void pt_close(pt_file *f)
{
    for (int k = 0; k < f->nst; k++)
        free(f->st[k].data);
    dhf_pv_free(f->root);
    dhf_pt_close(f->a);
}

static int pt_open(pt_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    if (!dhf_path_exists(path))
        return dhf_err_set("%s: no such file", path);
    if (dhf_pt_open(path, &f->a) != DHF_OK)
        return dhf_err_set("%s: not a torch.save zip archive (PyTorch >= 1.6 writes one by "
                           "default; the legacy pickle format is not read: load it in "
                           "PyTorch and save it again): %s", path, dhf_last_error());
    void *pkl = NULL;
    size_t n = 0;
    if (dhf_pt_read(f->a, "data.pkl", &pkl, &n) != DHF_OK) {
        dhf_err_set("%s: data.pkl: %s", path, dhf_last_error());
        pt_close(f);
        return -1;
    }
    char what[4200];
    snprintf(what, sizeof what, "%s: data.pkl", path);
    int rc = dhf_pickle_load(pkl, n, what, &f->root);
    free(pkl);
    if (rc)
        pt_close(f);
    return rc;
}

static int storage(pt_file *f, const char *key, const void **data, size_t *size)
{
    for (int k = 0; k < f->nst; k++)
        if (!strcmp(f->st[k].key, key)) {
            *data = f->st[k].data;
            *size = f->st[k].size;
            return 0;
        }
    if (f->nst == (int)(sizeof f->st / sizeof f->st[0]))
        return dhf_err_set("%s: more than %zu storages", f->path, sizeof f->st / sizeof f->st[0]);
    char rec[96];
    snprintf(rec, sizeof rec, "data/%s", key);
    void *d = NULL;
    size_t n = 0;
    if (dhf_pt_read(f->a, rec, &d, &n) != DHF_OK)
        return dhf_err_set("%s: storage record %s: %s", f->path, rec, dhf_last_error());
    snprintf(f->st[f->nst].key, sizeof f->st[0].key, "%s", key);
    f->st[f->nst].data = d;
    f->st[f->nst].size = n;
    f->nst++;
    *data = d;
    *size = n;
    return 0;
}

/* a tensor value -> NEW contiguous float32 tensor (its view gathered from storage) */
static int to_tensor(pt_file *f, const dhf_pv *v, const char *name, dhf_tensor *out)
{
    if (!v || v->type != DHF_PV_TENSOR)
        return dhf_err_set("%s: '%s': expected a tensor, got %s", f->path, name,
                           v ? dhf_pv_type_name(v->type) : "nothing");
    if (v->dtype != DHF_PV_F32 && v->dtype != DHF_PV_F64 && v->dtype != DHF_PV_F16 &&
        v->dtype != DHF_PV_BF16)
        return dhf_err_set("%s: '%s': expected a floating-point tensor, got %s", f->path, name,
                           dhf_pv_dtype_name(v->dtype));
    const void *data = NULL;
    size_t size = 0;
    if (storage(f, v->storage_key, &data, &size))
        return -1;
    const size_t eb = dhf_dtype_bytes_pv(v->dtype);
    if (size != (size_t)v->storage_numel * eb)
        return dhf_err_set("%s: '%s': storage data/%s holds %zu bytes, expected %lld %s "
                           "elements (%lld bytes): truncated archive?", f->path, name,
                           v->storage_key, size, (long long)v->storage_numel,
                           dhf_pv_dtype_name(v->dtype),
                           (long long)v->storage_numel * (long long)eb);
    /* the view in its own dtype, then to float32 as the safetensors reader converts */
    const int64_t numel = dhf_pv_numel(v);
    int st_dt;
    float *buf = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
    void *raw = malloc(eb * (size_t)(numel ? numel : 1));
    if (!buf || !raw || dhf_pv_dtype_to_st(v->dtype, &st_dt)) {
        free(buf);
        free(raw);
        return dhf_err_set("%s: '%s': out of memory", f->path, name);
    }
    dhf_pv_gather(v, data, raw);
    dhf_st_convert_f32((dhf_st_dtype)st_dt, raw, buf, (size_t)numel);
    free(raw);
    int64_t shape[DHF_PV_MAX_DIMS];
    for (int d = 0; d < v->ndim; d++)
        shape[d] = v->size[d];
    dhf_status st = dhf_from_buffer(buf, DHF_F32, shape, v->ndim, out);
    free(buf);
    if (st != DHF_OK)
        return dhf_err_set("%s: '%s': %s", f->path, name, dhf_last_error());
    return 0;
}

static bool same_shape(const dhf_pv *t, const int64_t *shape, int nd)
{
    if (t->ndim != nd)
        return false;
    for (int d = 0; d < nd; d++)
        if (t->size[d] != shape[d])
            return false;
    return true;
}

/* ---- the config ------------------------------------------------------------------- */

/* a scalar or a list of scalars as YAML flow text */
static int yaml_of(const dhf_pv *v, char *buf, size_t n)
{
    switch (v->type) {
    case DHF_PV_BOOL:
        snprintf(buf, n, "%s", v->i ? "true" : "false");
        return 0;
    case DHF_PV_INT:
        snprintf(buf, n, "%" PRId64, v->i);
        return 0;
    case DHF_PV_FLOAT:
        snprintf(buf, n, "%.17g", v->f);
        return 0;
    case DHF_PV_STR: {
        cJSON *s = cJSON_CreateString(v->s);
        char *q = s ? cJSON_PrintUnformatted(s) : NULL;
        cJSON_Delete(s);
        if (!q || strlen(q) >= n) {
            free(q);
            return -1;
        }
        snprintf(buf, n, "%s", q);
        free(q);
        return 0;
    }
    case DHF_PV_LIST:
    case DHF_PV_TUPLE: {
        size_t w = (size_t)snprintf(buf, n, "[");
        for (size_t k = 0; k < v->len; k++) {
            char item[256];
            if (w >= n || yaml_of(v->items[k], item, sizeof item))
                return -1;
            w += (size_t)snprintf(buf + w, n - w, "%s%s", k ? ", " : "", item);
        }
        if (w + 2 > n)
            return -1;
        snprintf(buf + w, n - w, "]");
        return 0;
    }
    default:
        return -1;
    }
}

static void add_unused(dhf_pt_summary *sum, const char *key)
{
    size_t w = strlen(sum->unused_config_keys);
    if (w + strlen(key) + 3 < sizeof sum->unused_config_keys)
        snprintf(sum->unused_config_keys + w, sizeof sum->unused_config_keys - w, "%s%s",
                 w ? ", " : "", key);
}

/* defaults < the file's config; checked against the weights' shapes */
static int import_config(pt_file *f, int P, int S, dhf_config *cfg, dhf_pt_summary *sum)
{
    dhf_config_defaults(cfg);
    const dhf_pv *c = dhf_pv_get(f->root, "config");
    if (c && c->type != DHF_PV_DICT)
        return dhf_err_set("%s: 'config': expected a dict, got %s", f->path,
                           dhf_pv_type_name(c->type));
    bool have_ts = false, have_p = false;
    for (size_t k = 0; c && k < c->len; k++) {
        const dhf_pv *key = c->items[k], *val = c->values[k];
        if (key->type != DHF_PV_STR)
            continue;
        /* the paper's keys only (device, threads, paths of the authors' machine stay
         * out); batch_size counts images there (2 = one pair), pairs in dhf */
        bool paper = false;
        for (size_t j = 0; j < sizeof paper_keys / sizeof paper_keys[0]; j++)
            paper |= !strcmp(key->s, paper_keys[j]) && strcmp(key->s, "batch_size");
        if (!paper || val->type == DHF_PV_NONE) {
            add_unused(sum, key->s);
            continue;
        }
        char text[2048], assign[2300];
        if (yaml_of(val, text, sizeof text))
            return dhf_err_set("%s: config '%s': a %s dhf cannot read as that key's value",
                               f->path, key->s, dhf_pv_type_name(val->type));
        snprintf(assign, sizeof assign, "%s=%s", key->s, text);
        if (dhf_config_set(cfg, assign))
            return dhf_err_set("%s: config: %s", f->path, dhf_err_msg());
        have_ts |= !strcmp(key->s, "save_timestep");
        have_p |= !strcmp(key->s, "projection_dim");
    }
    /* the stored save_timestep is already in the order the network saw (the authors'
     * load_models reverses it before saving the config when flip_timesteps is set) */
    cfg->flip_timesteps = false;
    if (have_p && cfg->projection_dim != P)
        return dhf_err_set("%s: config projection_dim %d, but the weights have P = %d",
                           f->path, cfg->projection_dim, P);
    cfg->projection_dim = P;
    if (!have_ts)
        return dhf_err_set("%s: config has no save_timestep: the %d saved timesteps of the "
                           "network are unknown", f->path, S);
    if (cfg->save_timestep.n != S)
        return dhf_err_set("%s: config save_timestep has %d labels, but mixing_weights has "
                           "%d timesteps per layer", f->path, cfg->save_timestep.n, S);
    if (dhf_config_validate(cfg))
        return dhf_err_set("%s: config: %s", f->path, dhf_err_msg());
    return 0;
}

/* ---- the optimizer ---------------------------------------------------------------- */

static int as_int(const dhf_pv *v, int64_t *out)
{
    if (v && (v->type == DHF_PV_INT || v->type == DHF_PV_BOOL)) {
        *out = v->i;
        return 0;
    }
    if (v && v->type == DHF_PV_FLOAT && v->f == (double)(int64_t)v->f) {
        *out = (int64_t)v->f;
        return 0;
    }
    return -1;
}

/* AdamW state -> exp_avg / exp_avg_sq per dhf parameter index (see the header) */
static int import_optim(pt_file *f, const dhf_pv *osd, int L, const dhf_tensor *params,
                        char (*names)[NAME_CAP], dhf_tensor *m, dhf_tensor *v, int64_t *step)
{
    const int n = 1 + L * DHF_BNECK_NPARAMS;
    const dhf_pv *state = dhf_pv_get(osd, "state"), *groups = dhf_pv_get(osd, "param_groups");
    if (!state || state->type != DHF_PV_DICT || !groups || groups->type != DHF_PV_LIST)
        return dhf_err_set("%s: optimizer_state_dict: expected 'state' (dict) and "
                           "'param_groups' (list)", f->path);
    int64_t ids[1 + MAX_LAYERS * DHF_BNECK_NPARAMS];
    int nid = 0;
    for (size_t g = 0; g < groups->len; g++) {
        const dhf_pv *gr = groups->items[g], *ps = dhf_pv_get(gr, "params");
        if (!ps || ps->type != DHF_PV_LIST)
            return dhf_err_set("%s: optimizer_state_dict: param_groups[%zu] has no 'params' "
                               "list", f->path, g);
        const dhf_pv *betas = dhf_pv_get(gr, "betas"), *eps = dhf_pv_get(gr, "eps"),
                     *ams = dhf_pv_get(gr, "amsgrad");
        if ((betas && (betas->len != 2 || betas->items[0]->type != DHF_PV_FLOAT ||
                       betas->items[0]->f != 0.9 || betas->items[1]->f != 0.999)) ||
            (eps && (eps->type != DHF_PV_FLOAT || eps->f != 1e-8)) ||
            (ams && ams->type == DHF_PV_BOOL && ams->i))
            return dhf_err_set("%s: optimizer_state_dict: param_groups[%zu]: dhf continues "
                               "AdamW with betas (0.9, 0.999), eps 1e-8 and no amsgrad only",
                               f->path, g);
        for (size_t k = 0; k < ps->len; k++) {
            if (nid == n || as_int(ps->items[k], &ids[nid]))
                return dhf_err_set("%s: optimizer_state_dict: %s parameters (the network has "
                                   "%d)", f->path, nid == n ? "more" : "non-integer", n);
            nid++;
        }
    }
    if (nid != n)
        return dhf_err_set("%s: optimizer_state_dict: %d parameters in param_groups, the "
                           "network has %d", f->path, nid, n);
    *step = -1;
    for (int k = 0; k < n; k++) {
        /* position k: mixing_weights, then per layer in detectron2's order */
        const int di = k == 0 ? 0
                              : 1 + (k - 1) / DHF_BNECK_NPARAMS * DHF_BNECK_NPARAMS +
                                    torch_order[(k - 1) % DHF_BNECK_NPARAMS];
        const dhf_pv *s = NULL;
        for (size_t j = 0; j < state->len; j++) {
            int64_t key;
            if (!as_int(state->items[j], &key) && key == ids[k])
                s = state->values[j];
        }
        if (!s || s->type != DHF_PV_DICT)
            return dhf_err_set("%s: optimizer_state_dict: no state for parameter %" PRId64
                               " (%s)", f->path, ids[k], names[di]);
        const dhf_pv *st = dhf_pv_get(s, "step");
        int64_t sv = -1;
        if (st && st->type == DHF_PV_TENSOR) {
            dhf_tensor t = NULL;
            double d = 0;
            if (to_tensor(f, st, "step", &t))
                return -1;
            dhf_status rc = dhf_item_checked(t, &d);
            dhf_free(t);
            if (rc != DHF_OK || d != (double)(int64_t)d)
                return dhf_err_set("%s: optimizer state of %s: 'step' is not an integer",
                                   f->path, names[di]);
            sv = (int64_t)d;
        } else if (as_int(st, &sv)) {
            return dhf_err_set("%s: optimizer state of %s: no 'step'", f->path, names[di]);
        }
        if (*step >= 0 && sv != *step)
            return dhf_err_set("%s: optimizer state: parameters at different steps (%" PRId64
                               " and %" PRId64 "); dhf keeps one step count", f->path, *step,
                               sv);
        *step = sv;
        char what[NAME_CAP + 32];
        int64_t want[4], got[4];
        int nd = 0, gd = 0;
        if (dhf_shape(params[di], want, &nd) != DHF_OK)
            return dhf_err_set("%s: %s: %s", f->path, names[di], dhf_last_error());
        snprintf(what, sizeof what, "exp_avg of %s", names[di]);
        if (to_tensor(f, dhf_pv_get(s, "exp_avg"), what, &m[di]))
            return -1;
        snprintf(what, sizeof what, "exp_avg_sq of %s", names[di]);
        if (to_tensor(f, dhf_pv_get(s, "exp_avg_sq"), what, &v[di]))
            return -1;
        if (dhf_shape(m[di], got, &gd) != DHF_OK || gd != nd ||
            memcmp(got, want, sizeof(int64_t) * (size_t)nd) ||
            dhf_shape(v[di], got, &gd) != DHF_OK || gd != nd ||
            memcmp(got, want, sizeof(int64_t) * (size_t)nd)) {
            char ws[96];
            dhf_format_shape(ws, sizeof ws, want, nd);
            return dhf_err_set("%s: optimizer state for %s (parameter %" PRId64 ") does not "
                               "have its shape %s: param_groups not [mixing_weights], "
                               "[bottleneck_layers.parameters()]?", f->path, names[di],
                               ids[k], ws);
        }
    }
    return 0;
}

/* ---- import ----------------------------------------------------------------------- */

int dhf_pt_import(const char *pt, const char *out, const char *out_yaml, dhf_pt_summary *sum)
{
    dhf_pt_summary local;
    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof *sum);
    sum->step = -1;
    pt_file f;
    if (pt_open(&f, pt))
        return -1;
    enum { N = 1 + MAX_LAYERS * DHF_BNECK_NPARAMS };
    dhf_tensor params[N] = { 0 }, m[N] = { 0 }, v[N] = { 0 };
    static char names[N][NAME_CAP];
    dhf_ckpt_entry entries[N];
    char *config_json = NULL;
    int rc = -1, L = 0, S = 0, P = 0, n = 0;
    dhf_config cfg;

    const dhf_pv *root = f.root;
    if (root->type != DHF_PV_DICT) {
        dhf_err_set("%s: expected a dict at the top, got %s", pt, dhf_pv_type_name(root->type));
        goto done;
    }
    const dhf_pv *sd = dhf_pv_get(root, "aggregation_network");
    if (!sd && dhf_pv_get(root, "mixing_weights"))
        sd = root;                                  /* a bare state_dict */
    if (!sd || sd->type != DHF_PV_DICT) {
        dhf_err_set("%s: no 'aggregation_network' state dict (keys of the authors' "
                    "checkpoints: step, config, aggregation_network, optimizer_state_dict)", pt);
        goto done;
    }
    /* every key known; L from the layers present */
    for (size_t k = 0; k < sd->len; k++) {
        const dhf_pv *key = sd->items[k];
        int l = -1, used = 0;
        char rest[NAME_CAP] = "";
        if (key->type == DHF_PV_STR && !strcmp(key->s, "mixing_weights"))
            continue;
        if (key->type == DHF_PV_STR &&
            sscanf(key->s, "bottleneck_layers.%d.0.%159s%n", &l, rest, &used) == 2 &&
            (size_t)used == strlen(key->s) && l >= 0 && l < MAX_LAYERS) {
            bool known = false;
            for (int i = 0; i < DHF_BNECK_NPARAMS; i++)
                known |= !strcmp(rest, dhf_bottleneck_param_names[i]);
            if (known) {
                L = l + 1 > L ? l + 1 : L;
                continue;
            }
        }
        dhf_err_set("%s: aggregation_network: unexpected key '%s' (expected "
                    "bottleneck_layers.{l}.0.{conv1,conv2,conv3,shortcut}.weight, their "
                    ".norm.weight and .norm.bias, and mixing_weights)", pt,
                    key->type == DHF_PV_STR ? key->s : dhf_pv_type_name(key->type));
        goto done;
    }
    if (L == 0) {
        dhf_err_set("%s: aggregation_network has no bottleneck_layers", pt);
        goto done;
    }
    /* shapes: P from layer 0's conv3, C_l from each conv1 */
    char tn[NAME_CAP];
    torch_name(tn, 0, DHF_BN_CONV3_W);
    const dhf_pv *c3 = dhf_pv_get(sd, tn);
    if (!c3 || c3->type != DHF_PV_TENSOR || c3->ndim != 4) {
        dhf_err_set("%s: aggregation_network: missing or not a 4-D tensor: '%s'", pt, tn);
        goto done;
    }
    P = (int)c3->size[0];
    for (int l = 0; l < L; l++) {
        torch_name(tn, l, DHF_BN_CONV1_W);
        const dhf_pv *c1 = dhf_pv_get(sd, tn);
        if (!c1 || c1->type != DHF_PV_TENSOR || c1->ndim != 4) {
            dhf_err_set("%s: aggregation_network: missing or not a 4-D tensor: '%s'", pt, tn);
            goto done;
        }
        sum->channels[l] = (int)c1->size[1];
    }
    const dhf_pv *mw = dhf_pv_get(sd, "mixing_weights");
    if (!mw || mw->type != DHF_PV_TENSOR || mw->ndim != 1 || mw->size[0] % L != 0 ||
        mw->size[0] == 0) {
        dhf_err_set("%s: aggregation_network: 'mixing_weights' must be a 1-D tensor of "
                    "L * S values (L = %d layers)", pt, L);
        goto done;
    }
    S = (int)(mw->size[0] / L);
    snprintf(names[0], NAME_CAP, "mixing_weights");
    if (to_tensor(&f, mw, "mixing_weights", &params[0]))
        goto done;
    n = 1;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < DHF_BNECK_NPARAMS; i++, n++) {
            int64_t want[4];
            int nd = 0;
            dhf_bottleneck_param_shape(sum->channels[l], P, i, want, &nd);
            torch_name(tn, l, i);
            dhf_name(names[n], l, i);
            const dhf_pv *t = dhf_pv_get(sd, tn);
            if (!t) {
                dhf_err_set("%s: aggregation_network: missing '%s'", pt, tn);
                goto done;
            }
            if (t->type == DHF_PV_TENSOR && !same_shape(t, want, nd)) {
                char ws[96], gs[96];
                dhf_format_shape(ws, sizeof ws, want, nd);
                dhf_format_shape(gs, sizeof gs, t->size, t->ndim);
                dhf_err_set("%s: aggregation_network: '%s' has shape %s, expected %s (C_l = "
                            "%d, P = %d)", pt, tn, gs, ws, sum->channels[l], P);
                goto done;
            }
            if (to_tensor(&f, t, tn, &params[n]))
                goto done;
        }
    sum->num_layers = L;
    sum->num_timesteps = S;
    sum->proj_dim = P;
    if (import_config(&f, P, S, &cfg, sum))
        goto done;
    const dhf_pv *osd = dhf_pv_get(root, "optimizer_state_dict");
    if (osd && osd->type == DHF_PV_DICT) {
        if (import_optim(&f, osd, L, params, names, m, v, &sum->optim_step))
            goto done;
        sum->has_optim = true;
    }
    const dhf_pv *step = dhf_pv_get(root, "step");
    if (step && as_int(step, &sum->step)) {
        dhf_err_set("%s: 'step': expected an integer, got %s", pt, dhf_pv_type_name(step->type));
        goto done;
    }
    for (int k = 0; k < n; k++)
        entries[k] = (dhf_ckpt_entry){ .name = names[k], .param = params[k],
                                       .exp_avg = sum->has_optim ? m[k] : NULL,
                                       .exp_avg_sq = sum->has_optim ? v[k] : NULL };
    config_json = dhf_config_to_json(&cfg);
    if (!config_json) {
        dhf_err_set("%s: out of memory", pt);
        goto done;
    }
    dhf_ckpt_meta meta;
    dhf_ckpt_meta_init(&meta);
    meta.step = sum->step < 0 ? 0 : sum->step;
    snprintf(meta.run_name, sizeof meta.run_name, "imported:%s", dhf_basename(pt));
    meta.config_json = config_json;
    meta.optim_step = sum->has_optim ? sum->optim_step : 0;
    if (dhf_ckpt_save(out, entries, n, &meta) ||
        (out_yaml && dhf_config_save_yaml(&cfg, out_yaml)))
        goto done;
    rc = 0;
done:
    free(config_json);
    for (int k = 0; k < N; k++) {
        dhf_free(params[k]);
        dhf_free(m[k]);
        dhf_free(v[k]);
    }
    pt_close(&f);
    return rc;
}

/* ---- export ----------------------------------------------------------------------- */

/* parameters, two moments and a step per parameter */
#define MAX_RECORDS (4 * (1 + MAX_LAYERS * DHF_BNECK_NPARAMS))
typedef struct {
    const char *names[MAX_RECORDS];
    const void *data[MAX_RECORDS];
    size_t sizes[MAX_RECORDS];
    char keys[MAX_RECORDS][24];
    float *owned[MAX_RECORDS];
    int n, nkeys, nowned;
} records;

/* `bytes` of `copy` (owned from here on) as storage record data/<n>; its key into key */
static void add_record(records *r, float *copy, size_t bytes, char *key, size_t key_n)
{
    r->owned[r->nowned++] = copy;
    snprintf(r->keys[r->nkeys], sizeof r->keys[0], "data/%d", r->nkeys);
    r->names[r->n] = r->keys[r->nkeys];
    r->data[r->n] = copy;
    r->sizes[r->n] = bytes;
    r->n++;
    snprintf(key, key_n, "%d", r->nkeys++);
}

/* a float32 tensor of the checkpoint as a storage record and a tree value */
static dhf_pv *export_tensor(records *r, const dhf_st_file *st, const char *name)
{
    const dhf_st_info *t = dhf_st_find(st, name);
    if (!t || t->dtype != DHF_ST_F32)
        return NULL;
    float *copy = malloc(t->nbytes ? t->nbytes : 1);
    if (!copy)
        return NULL;
    memcpy(copy, t->data, t->nbytes);        /* the mapping may be unaligned */
    char key[16];
    add_record(r, copy, t->nbytes, key, sizeof key);
    return dhf_pv_tensor(key, DHF_PV_F32, t->shape, t->ndim);
}

/* the step count of torch.optim.AdamW's state from 1.12 on: a float32 scalar tensor */
static dhf_pv *export_scalar(records *r, float value)
{
    float *copy = malloc(sizeof *copy);
    if (!copy)
        return NULL;
    *copy = value;
    char key[16];
    add_record(r, copy, sizeof *copy, key, sizeof key);
    return dhf_pv_tensor(key, DHF_PV_F32, NULL, 0);
}

static int set_str(dhf_pv *d, const char *k, dhf_pv *v) { return dhf_pv_set(d, dhf_pv_str(k), v); }

/* the paper-named keys of cfg as the authors' config dict */
static dhf_pv *export_config(const dhf_config *cfg)
{
    char *js = dhf_config_to_json(cfg);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    free(js);
    dhf_pv *d = dhf_pv_dict(false);
    bool ok = o && d;
    for (size_t k = 0; ok && k < sizeof paper_keys / sizeof paper_keys[0]; k++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, paper_keys[k]);
        dhf_pv *v = NULL;
        if (cJSON_IsBool(e))
            v = dhf_pv_bool(cJSON_IsTrue(e));
        else if (cJSON_IsString(e))
            v = dhf_pv_str(e->valuestring);
        else if (cJSON_IsNumber(e))
            v = e->valuedouble == (double)(int64_t)e->valuedouble &&
                        strcmp(paper_keys[k], "lr") && strcmp(paper_keys[k], "weight_decay") &&
                        strcmp(paper_keys[k], "guidance_scale") &&
                        strcmp(paper_keys[k], "pck_threshold")
                    ? dhf_pv_int((int64_t)e->valuedouble)
                    : dhf_pv_float(e->valuedouble);
        else if (cJSON_IsArray(e)) {
            v = dhf_pv_list();
            const cJSON *it;
            cJSON_ArrayForEach(it, e)
            {
                if (v && dhf_pv_append(v, dhf_pv_int((int64_t)it->valuedouble)))
                    v = NULL;
            }
        }
        if (!e)
            continue;
        if (v && !strcmp(paper_keys[k], "batch_size"))
            v->i *= 2;                  /* the paper's batch: the two images of each pair */
        ok = v && set_str(d, paper_keys[k], v) == 0;
    }
    cJSON_Delete(o);
    if (!ok) {
        dhf_pv_free(d);
        return NULL;
    }
    return d;
}

static dhf_pv *adamw_group(const dhf_config *cfg, int first, int count)
{
    dhf_pv *g = dhf_pv_dict(false), *betas = dhf_pv_tuple(), *ps = dhf_pv_list();
    bool ok = g && betas && ps && !dhf_pv_append(betas, dhf_pv_float(0.9)) &&
              !dhf_pv_append(betas, dhf_pv_float(0.999));
    for (int k = 0; ok && k < count; k++)
        ok = !dhf_pv_append(ps, dhf_pv_int(first + k));
    ok = ok && !set_str(g, "lr", dhf_pv_float(cfg->lr)) && !set_str(g, "betas", betas);
    betas = NULL;
    ok = ok && !set_str(g, "eps", dhf_pv_float(1e-8)) &&
         !set_str(g, "weight_decay", dhf_pv_float(cfg->weight_decay)) &&
         !set_str(g, "amsgrad", dhf_pv_bool(false)) &&
         !set_str(g, "maximize", dhf_pv_bool(false)) &&
         !set_str(g, "foreach", dhf_pv_none()) && !set_str(g, "capturable", dhf_pv_bool(false)) &&
         !set_str(g, "params", ps);
    ps = NULL;
    if (!ok) {
        dhf_pv_free(g);
        dhf_pv_free(betas);
        dhf_pv_free(ps);
        return NULL;
    }
    return g;
}

int dhf_pt_export(const char *ckpt, const char *out, dhf_pt_summary *sum)
{
    dhf_pt_summary local;
    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof *sum);
    dhf_ckpt_meta meta;
    dhf_config cfg;
    dhf_st_file *st = NULL;
    dhf_pv *root = NULL;
    records *r = calloc(1, sizeof *r);
    void *pkl = NULL;
    size_t pkl_n = 0;
    int rc = -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    dhf_ckpt_meta_init(&meta);
    if (!r) {
        dhf_err_set("out of memory");
        goto done;
    }
    if (dhf_ckpt_read_meta(ckpt, &meta) || dhf_ckpt_meta_config(&meta, &cfg) ||
        dhf_st_open(ckpt, &st))
        goto done;
    int L = 0;
    char dn[NAME_CAP];
    for (;; L++) {
        dhf_name(dn, L, DHF_BN_CONV1_W);
        if (L == MAX_LAYERS || !dhf_st_find(st, dn))
            break;
    }
    const dhf_st_info *mwi = dhf_st_find(st, "mixing_weights");
    if (L == 0 || !mwi) {
        dhf_err_set("%s: not a dhf aggregation-network checkpoint (no mixing_weights or "
                    "bottlenecks.0.conv1.weight)", ckpt);
        goto done;
    }
    sum->num_layers = L;
    sum->num_timesteps = (int)(mwi->numel / L);
    sum->has_optim = meta.has_optim;
    sum->step = meta.step;
    sum->optim_step = meta.optim_step;
    root = dhf_pv_dict(false);
    dhf_pv *sd = dhf_pv_dict(true), *cfgv = export_config(&cfg);
    if (!root || !sd || !cfgv) {
        dhf_pv_free(sd);
        dhf_pv_free(cfgv);
        dhf_err_set("out of memory");
        goto done;
    }
    /* the authors' state_dict order: bottleneck_layers (detectron2's order), then
     * mixing_weights */
    for (int l = 0; l < L; l++)
        for (int j = 0; j < DHF_BNECK_NPARAMS; j++) {
            char tn[NAME_CAP];
            torch_name(tn, l, torch_order[j]);
            dhf_name(dn, l, torch_order[j]);
            dhf_pv *t = export_tensor(r, st, dn);
            if (!t) {
                dhf_pv_free(sd);
                dhf_pv_free(cfgv);
                dhf_err_set("%s: tensor '%s' missing or not float32", ckpt, dn);
                goto done;
            }
            if (dhf_pv_set(sd, dhf_pv_str(tn), t)) {
                dhf_pv_free(cfgv);
                dhf_err_set("out of memory");
                goto done;
            }
        }
    if (dhf_pv_set(sd, dhf_pv_str("mixing_weights"), export_tensor(r, st, "mixing_weights")) ||
        set_str(root, "step", dhf_pv_int(meta.step)) || set_str(root, "config", cfgv) ||
        set_str(root, "aggregation_network", sd)) {
        dhf_err_set("out of memory");
        goto done;
    }
    if (meta.has_optim) {
        const int n = 1 + L * DHF_BNECK_NPARAMS;
        dhf_pv *state = dhf_pv_dict(false), *groups = dhf_pv_list();
        bool ok = state && groups;
        for (int k = 0; ok && k < n; k++) {
            const int di = k == 0 ? -1 : torch_order[(k - 1) % DHF_BNECK_NPARAMS];
            char name[NAME_CAP], mn[NAME_CAP + 32], vn[NAME_CAP + 32];
            if (k == 0)
                snprintf(name, sizeof name, "mixing_weights");
            else
                dhf_name(name, (k - 1) / DHF_BNECK_NPARAMS, di);
            snprintf(mn, sizeof mn, "%s%s", DHF_CKPT_EXP_AVG_PREFIX, name);
            snprintf(vn, sizeof vn, "%s%s", DHF_CKPT_EXP_AVG_SQ_PREFIX, name);
            dhf_pv *s = dhf_pv_dict(false);
            ok = s && !set_str(s, "step", export_scalar(r, (float)meta.optim_step)) &&
                 !set_str(s, "exp_avg", export_tensor(r, st, mn)) &&
                 !set_str(s, "exp_avg_sq", export_tensor(r, st, vn)) &&
                 !dhf_pv_set(state, dhf_pv_int(k), s);
        }
        ok = ok && !dhf_pv_append(groups, adamw_group(&cfg, 0, 1)) &&
             !dhf_pv_append(groups, adamw_group(&cfg, 1, n - 1));
        dhf_pv *osd = dhf_pv_dict(false);
        ok = ok && osd && !set_str(osd, "state", state);
        state = NULL;
        ok = ok && !set_str(osd, "param_groups", groups);
        groups = NULL;
        if (!ok || set_str(root, "optimizer_state_dict", osd)) {
            dhf_pv_free(state);
            dhf_pv_free(groups);
            dhf_err_set("%s: optimizer moments missing or not float32", ckpt);
            goto done;
        }
    }
    if (dhf_pickle_dump(root, &pkl, &pkl_n))
        goto done;
    /* data.pkl first, as torch.save writes it; byteorder for torch >= 2.1 */
    const char *names[1 + sizeof r->names / sizeof r->names[0]];
    const void *data[1 + sizeof r->names / sizeof r->names[0]];
    size_t sizes[1 + sizeof r->names / sizeof r->names[0]];
    names[0] = "data.pkl";
    data[0] = pkl;
    sizes[0] = pkl_n;
    for (int k = 0; k < r->n; k++) {
        names[1 + k] = r->names[k];
        data[1 + k] = r->data[k];
        sizes[1 + k] = r->sizes[k];
    }
    names[1 + r->n] = "byteorder";
    data[1 + r->n] = "little";
    sizes[1 + r->n] = 6;
    if (dhf_pt_write(tmp, names, data, sizes, r->n + 2) != DHF_OK) {
        dhf_err_set("%s: %s", out, dhf_last_error());
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, out) != 0) {
        dhf_err_set("%s: cannot rename the temporary file into place", out);
        unlink(tmp);
        goto done;
    }
    rc = 0;
done:
    free(pkl);
    dhf_pv_free(root);
    if (r)
        for (int k = 0; k < r->nowned; k++)
            free(r->owned[k]);
    free(r);
    dhf_st_close(st);
    dhf_ckpt_meta_free(&meta);
    return rc;
}
