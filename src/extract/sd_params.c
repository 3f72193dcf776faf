/* sd_params.c — parameter sources for the SD networks: strict safetensors loading,
 * seeded random values (in memory or written to a writer), and the bookkeeping of
 * which stored tensors were used. */
#include "extract/sd_params.h"
#include "extract/pt_weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/torch/st_tensor.h"

int dhf_tensor_list_push(dhf_tensor_list *l, dhf_tensor t)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        dhf_tensor *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items)
            return dhf_err_set("out of memory growing a parameter list");
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = t;
    return 0;
}

void dhf_tensor_list_free(dhf_tensor_list *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        dhf_free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static void params_defaults(dhf_params *p)
{
    memset(p, 0, sizeof *p);
    p->device.type = DHF_CPU;
    p->device.index = 0;
    p->dtype = DHF_F32;
    p->write_dtype = DHF_ST_F32;
}

int dhf_params_open_file(dhf_params *p, const char *path, dhf_tensor_list *dst)
{
    params_defaults(p);
    p->mode = DHF_PARAMS_FILE;
    snprintf(p->path, sizeof p->path, "%s", path);
    p->dst = dst;
    /* PyTorch torch.save weights (.bin, .pth, .pt) become an in-memory safetensors
     * file: one loading path */
    const size_t len = strlen(path);
    const bool bin = (len > 4 && strcmp(path + len - 4, ".bin") == 0) ||
                     (len > 4 && strcmp(path + len - 4, ".pth") == 0) ||
                     (len > 3 && strcmp(path + len - 3, ".pt") == 0);
    if ((bin ? dhf_pt_weights_open(path, &p->st) : dhf_st_open(path, &p->st)) != 0)
        return -1;
    int n = dhf_st_count(p->st);
    p->used = calloc(n > 0 ? (size_t)n : 1, 1);
    if (!p->used) {
        dhf_st_close(p->st);
        p->st = NULL;
        return dhf_err_set("%s: out of memory", path);
    }
    return 0;
}

void dhf_params_init_random(dhf_params *p, uint64_t seed, const char *label,
                            dhf_tensor_list *dst)
{
    params_defaults(p);
    p->mode = DHF_PARAMS_RANDOM;
    p->seed = seed;
    p->dst = dst;
    snprintf(p->path, sizeof p->path, "%s", label ? label : "<random>");
}

void dhf_params_init_generate(dhf_params *p, uint64_t seed, const char *label,
                              dhf_st_writer *w, dhf_st_dtype write_dtype)
{
    params_defaults(p);
    p->mode = DHF_PARAMS_GENERATE;
    p->seed = seed;
    p->writer = w;
    p->write_dtype = write_dtype;
    snprintf(p->path, sizeof p->path, "%s", label ? label : "<generated>");
}

void dhf_params_close(dhf_params *p)
{
    if (!p)
        return;
    dhf_st_close(p->st);
    p->st = NULL;
    free(p->used);
    p->used = NULL;
}

/* Tensors are stored in strcmp order, so a binary search finds the index to flag. */
static int find_index(const dhf_params *p, const char *name)
{
    int lo = 0, hi = dhf_st_count(p->st) - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(dhf_st_at(p->st, mid)->name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    /* Fall back to a scan in case the reader's order is not strcmp order. */
    for (int i = 0; i < dhf_st_count(p->st); i++)
        if (strcmp(dhf_st_at(p->st, i)->name, name) == 0)
            return i;
    return -1;
}

bool dhf_params_has(const dhf_params *p, const char *name)
{
    return p->mode == DHF_PARAMS_FILE && p->st && dhf_st_find(p->st, name) != NULL;
}

int dhf_params_stored_shape(const dhf_params *p, const char *name, int64_t *shape)
{
    if (p->mode != DHF_PARAMS_FILE || !p->st)
        return -1;
    const dhf_st_info *info = dhf_st_find(p->st, name);
    if (!info)
        return -1;
    for (int i = 0; i < info->ndim; i++)
        shape[i] = info->shape[i];
    return info->ndim;
}

void dhf_params_mark_used(dhf_params *p, const char *name)
{
    if (p->mode != DHF_PARAMS_FILE || !p->st)
        return;
    int i = find_index(p, name);
    if (i >= 0)
        p->used[i] = 1;
}

int dhf_params_check_all_used(const dhf_params *p, const char *const *ignored_prefixes)
{
    if (p->mode != DHF_PARAMS_FILE || !p->st)
        return 0;
    for (int i = 0; i < dhf_st_count(p->st); i++) {
        if (p->used[i])
            continue;
        const char *name = dhf_st_at(p->st, i)->name;
        bool ignored = false;
        for (int k = 0; ignored_prefixes && ignored_prefixes[k]; k++)
            if (strncmp(name, ignored_prefixes[k], strlen(ignored_prefixes[k])) == 0)
                ignored = true;
        if (!ignored)
            return dhf_err_set("%s: unexpected tensor '%s' (not part of the network the "
                               "config.json next to it describes)", p->path, name);
    }
    return 0;
}

/* ---- seeded random values ------------------------------------------------ */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static double uniform01(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}

static double std_normal(uint64_t *state)
{
    double u1 = uniform01(state), u2 = uniform01(state);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Each tensor's values depend only on (seed, name), not on construction order. */
static void fill_random(float *v, int64_t n, uint64_t seed, const char *name,
                        dhf_param_init init, int64_t fan_in)
{
    uint64_t state = seed ^ fnv1a64(name);
    (void)splitmix64(&state);
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        switch (init) {
        case DHF_INIT_FAN_IN: v[i] = (float)((2.0 * uniform01(&state) - 1.0) * bound); break;
        case DHF_INIT_NORM_WEIGHT: v[i] = (float)(1.0 + 0.1 * std_normal(&state)); break;
        case DHF_INIT_NORM_BIAS: v[i] = (float)(0.1 * std_normal(&state)); break;
        case DHF_INIT_EMBEDDING: v[i] = (float)(0.5 * std_normal(&state)); break;
        }
    }
}

/* ---- delivery ---------------------------------------------------------------- */

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n)
{
    size_t len = 0;
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "",
                                (long long)shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

/* Moves t (NEW, CPU f32) to the requested device/dtype, detaches it from every
 * open scope and records it in the destination list. */
static int adopt(dhf_params *p, const char *name, dhf_tensor t, dhf_tensor *out)
{
    if (p->device.type != DHF_CPU || p->dtype != DHF_F32) {
        dhf_tensor moved = NULL;
        if (dhf_to(t, p->dtype, p->device, &moved) != DHF_OK) {
            dhf_free(t);
            return dhf_err_set("%s: tensor '%s': moving to the compute device: %s", p->path,
                               name, dhf_last_error());
        }
        dhf_free(t);
        t = moved;
    }
    for (int d = dhf_scope_depth(); d > 0; d--)   /* weights outlive any caller scope */
        dhf_keep(t);
    if (p->dst && dhf_tensor_list_push(p->dst, t) != 0) {
        dhf_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int dhf_params_get(dhf_params *p, dhf_param_init init, int64_t fan_in,
                   const int64_t *shape, int ndim, dhf_tensor *out, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    *out = NULL;

    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];

    if (p->mode == DHF_PARAMS_FILE) {
        const dhf_st_info *info = dhf_st_find(p->st, name);
        if (!info)
            return dhf_err_set("%s: missing tensor '%s'", p->path, name);
        bool same = info->ndim == ndim;
        for (int i = 0; same && i < ndim; i++)
            same = info->shape[i] == shape[i];
        if (!same) {
            char want[128], got[128];
            shape_str(shape, ndim, want, sizeof want);
            shape_str(info->shape, info->ndim, got, sizeof got);
            return dhf_err_set("%s: tensor '%s' has shape %s, expected %s", p->path, name,
                               got, want);
        }
        if (info->dtype != DHF_ST_F32 && info->dtype != DHF_ST_F16 &&
            info->dtype != DHF_ST_BF16 && info->dtype != DHF_ST_F64)
            return dhf_err_set("%s: tensor '%s' has dtype %s, expected a floating type "
                               "(F32, F16, BF16)", p->path, name,
                               dhf_st_dtype_name(info->dtype));
        dhf_tensor t = NULL;
        if (dhf_st_load_expect(p->st, name, shape, ndim, &t) != 0)
            return -1;
        int idx = find_index(p, name);
        if (idx >= 0)
            p->used[idx] = 1;
        p->n_values += numel;
        p->n_tensors++;
        return adopt(p, name, t, out);
    }

    float *values = malloc((size_t)(numel > 0 ? numel : 1) * sizeof *values);
    if (!values)
        return dhf_err_set("%s: out of memory for tensor '%s' (%lld values)", p->path, name,
                           (long long)numel);
    fill_random(values, numel, p->seed, name, init, fan_in);
    p->n_values += numel;
    p->n_tensors++;

    if (p->mode == DHF_PARAMS_GENERATE) {
        int rc;
        if (p->write_dtype == DHF_ST_F32) {
            rc = dhf_st_writer_add(p->writer, name, DHF_ST_F32, shape, ndim, values);
        } else {
            uint16_t *half = malloc((size_t)(numel > 0 ? numel : 1) * sizeof *half);
            if (!half) {
                free(values);
                return dhf_err_set("%s: out of memory for tensor '%s'", p->path, name);
            }
            for (int64_t i = 0; i < numel; i++)
                half[i] = p->write_dtype == DHF_ST_F16 ? dhf_st_f32_to_f16(values[i])
                                                       : dhf_st_f32_to_bf16(values[i]);
            rc = dhf_st_writer_add(p->writer, name, p->write_dtype, shape, ndim, half);
            free(half);
        }
        free(values);
        return rc;
    }

    dhf_tensor t = NULL;
    dhf_status st = dhf_from_buffer(values, DHF_F32, shape, ndim, &t);
    free(values);
    if (st != DHF_OK)
        return dhf_err_set("%s: tensor '%s': %s", p->path, name, dhf_last_error());
    return adopt(p, name, t, out);
}

int dhf_params_open_component(dhf_params *p, const char *dir, const char *stem,
                              const dhf_model_placement *placement)
{
    char w_path[4096];
    if (dhf_find_weights_file(dir, stem, w_path, sizeof w_path) != 0 ||
        dhf_params_open_file(p, w_path, NULL) != 0)
        return -1;
    if (placement) {
        p->device = placement->device;
        p->dtype = placement->dtype;
    }
    return 0;
}
