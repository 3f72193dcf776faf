/* agg_engine.c — the aggregator's view for the engine and the forward that picks the
 * engine or libtorch (agg_engine.h). */
#include "train/agg_engine.h"

#include "core/error.h"
#include "core/torch/shim_try.h"

void dhf_agg_engine_net(const dhf_aggregator *a, dhf_engine_net *net)
{
    const dhf_agg_config *c = &a->cfg;
    *net = (dhf_engine_net){ .num_layers = c->num_layers, .num_timesteps = c->num_timesteps,
                             .proj_dim = c->proj_dim, .out_res = c->out_res,
                             .gn_groups = DHF_BNECK_GN_GROUPS, .gn_eps = DHF_BNECK_GN_EPS,
                             .mixing_weights = a->mixing_weights,
                             .f32_compute = a->bneck[0].compute_dtype == DHF_F32,
                             .num_params = a->num_params, .params = a->params,
                             .param_names = a->names };
    for (int l = 0; l < c->num_layers && l < DHF_ENGINE_MAX_LAYERS; l++) {
        const dhf_tensor *p = a->bneck[l].p;
        net->channels[l] = c->channels[l];
        net->layer[l] = (dhf_engine_layer){
            .conv1_w = p[DHF_BN_CONV1_W], .gn1_w = p[DHF_BN_CONV1_GN_W],
            .gn1_b = p[DHF_BN_CONV1_GN_B], .conv2_w = p[DHF_BN_CONV2_W],
            .gn2_w = p[DHF_BN_CONV2_GN_W], .gn2_b = p[DHF_BN_CONV2_GN_B],
            .conv3_w = p[DHF_BN_CONV3_W], .gn3_w = p[DHF_BN_CONV3_GN_W],
            .gn3_b = p[DHF_BN_CONV3_GN_B], .short_w = p[DHF_BN_SHORT_W],
            .gns_w = p[DHF_BN_SHORT_GN_W], .gns_b = p[DHF_BN_SHORT_GN_B] };
    }
}

bool dhf_agg_engine_ready(const dhf_aggregator *a, const dhf_runner *r)
{
    dhf_engine_net net;
    dhf_agg_engine_net(a, &net);
    return dhf_runner_ready(r, &net);
}

int dhf_agg_forward_run(const dhf_aggregator *a, dhf_runner *r, dhf_agg_order order,
                        const dhf_tensor *feats, dhf_tensor *desc)
{
    dhf_engine_net net;
    dhf_agg_engine_net(a, &net);
    bool engine = false;
    int64_t B = 0;
    if (dhf_aggregator_check_feats(a, feats, &B))
        return -1;
    if (order == DHF_AGG_FAST && !dhf_is_grad_enabled() && dhf_runner_use(r, &net, feats, &engine))
        return -1;
    if (!engine)
        return dhf_aggregator_forward_order(a, feats, order, desc);
    const dhf_agg_config *c = &a->cfg;
    int64_t ds[4] = { B, c->proj_dim, c->out_res, c->out_res };
    dhf_tensor out = NULL;
    dhf_scope_begin();
    DHF_TRY(dhf_empty(DHF_F32, dhf_cpu_device(), ds, 4, &out), "descriptor");
    if (dhf_runner_forward(r, &net, feats, (float *)dhf_data_ptr(out)))
        goto fail;
    DHF_TRY(dhf_keep(out), "descriptor");
    dhf_scope_end();
    *desc = out;
    return 0;
fail:
    dhf_scope_end();
    return dhf_err_wrap("aggregator forward (oneDNN)");
}
