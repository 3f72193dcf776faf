/* aggregator.c — the aggregation network (see aggregator.h): parameters and their
 * names, loading them from safetensors, and the forward in both orders. */
#include "train/aggregator.h"

#include <stdio.h>
#include <string.h>

#include "core/torch/st_tensor.h"
#include "core/torch/shim_try.h"

int dhf_agg_options_from_config(const dhf_config *cfg, dhf_device dev, dhf_agg_config *ac,
                                dhf_dtype *compute)
{
    if (dhf_agg_order_parse(cfg->aggregation_order, &ac->order) != 0 ||
        dhf_agg_mixed_precision_parse(cfg->mixed_precision, dev, compute) != 0)
        return -1;
    ac->recompute_layers = cfg->recompute_layers;
    return 0;
}

int dhf_agg_order_parse(const char *s, dhf_agg_order *out)
{
    const int i = dhf_config_choice("aggregation_order", s);   /* fast|straightforward */
    if (i < 0)
        return -1;
    *out = (dhf_agg_order)i;
    return 0;
}

const char *dhf_agg_order_name(dhf_agg_order o)
{
    return o == DHF_AGG_STRAIGHTFORWARD ? "straightforward" : "fast";
}

static void build_param_list(dhf_aggregator *a)
{
    int n = 0;
    a->params[n] = a->mixing_weights;
    snprintf(a->names[n], DHF_AGG_PARAM_NAME, "mixing_weights");
    n++;
    for (int l = 0; l < a->cfg.num_layers; l++)
        for (int i = 0; i < DHF_BNECK_NPARAMS; i++, n++) {
            a->params[n] = a->bneck[l].p[i];
            snprintf(a->names[n], DHF_AGG_PARAM_NAME, "bottlenecks.%d.%s", l,
                     dhf_bottleneck_param_names[i]);
        }
    a->num_params = n;
}

int dhf_aggregator_init(dhf_aggregator *a, const dhf_agg_config *cfg, uint64_t seed)
{
    memset(a, 0, sizeof *a);
    if (cfg->num_layers < 1 || cfg->num_layers > DHF_AGG_MAX_LAYERS || cfg->num_timesteps < 1 ||
        cfg->out_res < 1)
        return dhf_err_set("aggregator: expected 1 <= layers (%d) <= %d, timesteps (%d) >= 1 "
                           "and output_resolution (%d) >= 1",
                           cfg->num_layers, DHF_AGG_MAX_LAYERS, cfg->num_timesteps,
                           cfg->out_res);
    a->cfg = *cfg;
    for (int l = 0; l < cfg->num_layers; l++)
        if (dhf_bottleneck_init(&a->bneck[l], cfg->channels[l], cfg->proj_dim,
                                seed * 1000003ull + (uint64_t)l * 97ull)) {
            dhf_err_wrap("aggregator layer %d", l);
            goto fail;
        }
    int64_t n = (int64_t)cfg->num_layers * cfg->num_timesteps;
    DHF_TRY(dhf_ones(DHF_F32, dhf_cpu_device(), &n, 1, &a->mixing_weights), "mixing_weights");
    DHF_TRY(dhf_set_requires_grad(a->mixing_weights, true), "mixing_weights");
    build_param_list(a);
    return 0;
fail:
    dhf_aggregator_free(a);
    return -1;
}

void dhf_aggregator_free(dhf_aggregator *a)
{
    if (!a)
        return;
    for (int l = 0; l < DHF_AGG_MAX_LAYERS; l++)
        dhf_bottleneck_free(&a->bneck[l]);
    dhf_free(a->mixing_weights);
    memset(a, 0, sizeof *a);
}

int dhf_aggregator_load(dhf_aggregator *a, const dhf_st_file *f, const char *prefix)
{
    bool prev = true;
    int rc = -1;
    dhf_set_grad_enabled(false, &prev);
    for (int i = 0; i < a->num_params; i++) {
        char name[256];
        int64_t shape[DHF_MAX_DIMS];
        int nd;
        dhf_tensor t = NULL;
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", a->names[i]);
        DHF_TRY(dhf_shape(a->params[i], shape, &nd), name);
        if (dhf_st_load_expect(f, name, shape, nd, &t))
            goto fail;
        dhf_status st = dhf_copy_(a->params[i], t);
        dhf_free(t);
        DHF_TRY(st, name);
    }
    rc = 0;
fail:
    dhf_set_grad_enabled(prev, NULL);
    return rc;
}

int dhf_aggregator_set_compute_dtype(dhf_aggregator *a, dhf_dtype dt)
{
    if (dt != DHF_F32 && dt != DHF_BF16 && dt != DHF_F16)
        return dhf_err_set("aggregator: compute dtype must be float32, bfloat16 or float16");
    for (int l = 0; l < a->cfg.num_layers; l++)
        a->bneck[l].compute_dtype = dt;
    return 0;
}

int dhf_agg_mixed_precision_parse(const char *s, dhf_device dev, dhf_dtype *out)
{
    /* by position in the key's choices: auto|off|bf16|fp16 */
    const dhf_dtype dtypes[] = { dev.type == DHF_CUDA ? DHF_BF16 : DHF_F32, DHF_F32, DHF_BF16,
                                 DHF_F16 };
    const int i = dhf_config_choice("mixed_precision", s);
    if (i < 0)
        return -1;
    *out = dtypes[i];
    return 0;
}

int dhf_aggregator_clear_grads(dhf_aggregator *a)
{
    for (int i = 0; i < a->num_params; i++)
        DHF_TRY(dhf_clear_grad(a->params[i]), a->names[i]);
    return 0;
fail:
    return -1;
}

int dhf_aggregator_zero_grads(dhf_aggregator *a)
{
    for (int i = 0; i < a->num_params; i++)
        DHF_TRY(dhf_zero_grad(a->params[i]), a->names[i]);
    return 0;
fail:
    return -1;
}

int dhf_aggregator_check_feats(const dhf_aggregator *a, const dhf_tensor *feats, int64_t *batch)
{
    const dhf_agg_config *c = &a->cfg;
    for (int l = 0; l < c->num_layers; l++) {
        dhf_tensor f = feats[l];
        if (!f || dhf_ndim(f) != 5 || dhf_size(f, 1) != c->num_timesteps ||
            dhf_size(f, 2) != c->channels[l] || (l > 0 && dhf_size(f, 0) != *batch)) {
            char d[128] = "(null)";
            if (f)
                dhf_describe(f, d, sizeof d);
            return dhf_err_set("aggregator: features of layer %d: expected [B%s, S=%d, C=%d, H, W], "
                               "got %s", l, l > 0 ? " (same as layer 0)" : "",
                               c->num_timesteps, c->channels[l], d);
        }
        if (l == 0)
            *batch = dhf_size(f, 0);
    }
    return 0;
}

/* desc (NULL at first) += contribution, keeping the first contribution alive in
 * the enclosing scope. */
static int accumulate(dhf_tensor *desc, dhf_tensor contrib)
{
    if (!*desc) {
        DHF_TRY(dhf_keep(contrib), "aggregate");
        *desc = contrib;
        return 0;
    }
    DHF_TRY(dhf_add_(*desc, contrib), "aggregate");
    return 0;
fail:
    return -1;
}

/* Layer l of the fast order: [B*S, C_l, h, w] -> bottleneck (native order) with sample
 * (b, s) scaled by its mixing weight w[s*L + l] inside the block (w > 0) ->
 * [B, S, P*R*R] -> sum over s. The sum's backward is a broadcast, so the mixing costs
 * no pass over the activations in the backward. Runs inside a per-layer scope. */
static int fast_layer(const dhf_aggregator *a, const dhf_tensor *feats, int l, int64_t B,
                      dhf_tensor w2, dhf_tensor *desc)
{
    const dhf_agg_config *c = &a->cfg;
    const int64_t S = c->num_timesteps;
    const int64_t prr = (int64_t)c->proj_dim * c->out_res * c->out_res;
    dhf_tensor x = NULL, o = NULL, o3 = NULL, wl = NULL, wl2 = NULL, wle = NULL, mult = NULL;
    dhf_tensor contrib = NULL;
    int64_t xs[4] = { B * S, dhf_size(feats[l], 2), dhf_size(feats[l], 3),
                      dhf_size(feats[l], 4) };
    int64_t os[3] = { B, S, prr }, s1[2] = { 1, S }, sb[2] = { B, S }, sn[1] = { B * S };
    DHF_TRY(dhf_reshape(feats[l], xs, 4, &x), "features [B*S, C, h, w]");
    DHF_TRY(dhf_select(w2, 1, l, &wl), "mixing weights of a layer");          /* [S] */
    DHF_TRY(dhf_reshape(wl, s1, 2, &wl2), "mixing weights of a layer");
    DHF_TRY(dhf_expand(wl2, sb, 2, &wle), "mixing weights per image");
    DHF_TRY(dhf_reshape(wle, sn, 1, &mult), "mixing weights per sample");     /* [B*S] */
    if (dhf_bottleneck_forward_native(&a->bneck[l], x, c->out_res, mult, &o))
        return dhf_err_wrap("layer %d", l);
    DHF_TRY(dhf_view(o, os, 3, &o3), "bottleneck output [B, S, P*R*R]");
    DHF_TRY(dhf_sum_dim(o3, 1, false, &contrib), "timestep mixing");          /* [B, P*R*R] */
    return accumulate(desc, contrib);
fail:
    return -1;
}

static int forward_fast(const dhf_aggregator *a, const dhf_tensor *feats, int64_t B,
                        dhf_tensor w, dhf_tensor *desc)
{
    const dhf_agg_config *c = &a->cfg;
    dhf_tensor w2 = NULL;
    int64_t sl[2] = { c->num_timesteps, c->num_layers };
    DHF_TRY(dhf_view(w, sl, 2, &w2), "mixing weights [S, L]");
    for (int l = 0; l < c->num_layers; l++) {
        /* a scope per layer: its temporaries are released before the next layer */
        dhf_scope_begin();
        int rc = fast_layer(a, feats, l, B, w2, desc);
        dhf_scope_end();
        if (rc)
            return -1;
    }
    return 0;
fail:
    return -1;
}

/* Call i = s*L + l of the paper's loop: resize, bottleneck, scale by w[i], add. */
static int straightforward_call(const dhf_aggregator *a, const dhf_tensor *feats, int s,
                                int l, dhf_tensor w, dhf_tensor *desc)
{
    const dhf_agg_config *c = &a->cfg;
    dhf_tensor xs = NULL, xr = NULL, o = NULL, wi = NULL, contrib = NULL;
    DHF_TRY(dhf_select(feats[l], 1, s, &xs), "features of a timestep");
    if (dhf_agg_resize(xs, c->out_res, &xr) || dhf_bottleneck_forward(&a->bneck[l], xr, &o))
        return dhf_err_wrap("timestep %d layer %d", s, l);
    DHF_TRY(dhf_select(w, 0, (int64_t)s * c->num_layers + l, &wi), "mixing weight");
    DHF_TRY(dhf_mul(o, wi, &contrib), "weighting");
    return accumulate(desc, contrib);
fail:
    return -1;
}

static int forward_straightforward(const dhf_aggregator *a, const dhf_tensor *feats,
                                   dhf_tensor w, dhf_tensor *desc)
{
    for (int s = 0; s < a->cfg.num_timesteps; s++)
        for (int l = 0; l < a->cfg.num_layers; l++) {
            dhf_scope_begin();
            int rc = straightforward_call(a, feats, s, l, w, desc);
            dhf_scope_end();
            if (rc)
                return -1;
        }
    return 0;
}

int dhf_aggregator_layer_forward(const dhf_aggregator *a, const dhf_tensor *feats, int l,
                                 dhf_agg_order order, dhf_tensor w, dhf_tensor *contrib)
{
    const dhf_agg_config *c = &a->cfg;
    int64_t B = 0;
    if (l < 0 || l >= c->num_layers)
        return dhf_err_set("aggregator: layer %d outside 0..%d", l, c->num_layers - 1);
    if (dhf_aggregator_check_feats(a, feats, &B))
        return -1;
    dhf_tensor acc = NULL, flat = NULL, w2 = NULL;
    int64_t sl[2] = { c->num_timesteps, c->num_layers };
    int64_t fs[2] = { B, (int64_t)c->proj_dim * c->out_res * c->out_res };
    dhf_scope_begin();
    if (order == DHF_AGG_FAST) {
        DHF_TRY(dhf_view(w, sl, 2, &w2), "mixing weights [S, L]");
        dhf_scope_begin();
        int rc = fast_layer(a, feats, l, B, w2, &acc);
        dhf_scope_end();
        if (rc)
            goto fail;
    } else {
        for (int s = 0; s < c->num_timesteps; s++) {
            dhf_scope_begin();
            int rc = straightforward_call(a, feats, s, l, w, &acc);
            dhf_scope_end();
            if (rc)
                goto fail;
        }
    }
    DHF_TRY(dhf_reshape(acc, fs, 2, &flat), "layer contribution [B, P*R*R]");
    DHF_TRY(dhf_keep(flat), "layer contribution");
    dhf_scope_end();
    *contrib = flat;
    return 0;
fail:
    dhf_err_wrap("aggregator layer %d (%s order)", l, dhf_agg_order_name(order));
    dhf_scope_end();
    return -1;
}

int dhf_aggregator_forward_order(const dhf_aggregator *a, const dhf_tensor *feats,
                                 dhf_agg_order order, dhf_tensor *desc)
{
    int64_t B = 0;
    if (dhf_aggregator_check_feats(a, feats, &B))
        return -1;
    const dhf_agg_config *c = &a->cfg;
    dhf_tensor w = NULL, acc = NULL, out = NULL;
    dhf_scope_begin();
    DHF_TRY(dhf_softmax(a->mixing_weights, 0, &w), "softmax(mixing_weights)");
    if (order == DHF_AGG_FAST ? forward_fast(a, feats, B, w, &acc)
                              : forward_straightforward(a, feats, w, &acc))
        goto fail;
    int64_t ds[4] = { B, c->proj_dim, c->out_res, c->out_res };
    DHF_TRY(dhf_reshape(acc, ds, 4, &out), "descriptor [B, P, R, R]");
    DHF_TRY(dhf_keep(out), "descriptor");
    dhf_scope_end();
    *desc = out;
    return 0;
fail:
    dhf_err_wrap("aggregator forward (%s order)", dhf_agg_order_name(order));
    dhf_scope_end();
    return -1;
}

int dhf_aggregator_forward(const dhf_aggregator *a, const dhf_tensor *feats, dhf_tensor *desc)
{
    return dhf_aggregator_forward_order(a, feats, a->cfg.order, desc);
}
