/* optim.c — AdamW state and update over the aggregator's parameter groups. */
#include "train/optim.h"

#include <string.h>

#include "core/torch/shim_try.h"

int dhf_agg_adamw_init(dhf_agg_adamw *o, const dhf_aggregator *a, const dhf_adamw_hparams *hp)
{
    memset(o, 0, sizeof *o);
    o->mixing = *hp;
    o->bottlenecks = *hp;
    for (int i = 0; i < a->num_params; i++) {
        int64_t shape[DHF_MAX_DIMS];
        int nd;
        DHF_TRY(dhf_shape(a->params[i], shape, &nd), a->names[i]);
        DHF_TRY(dhf_zeros(DHF_F32, dhf_cpu_device(), shape, nd, &o->exp_avg[i]), a->names[i]);
        DHF_TRY(dhf_zeros(DHF_F32, dhf_cpu_device(), shape, nd, &o->exp_avg_sq[i]), a->names[i]);
        o->num_params = i + 1;
    }
    return 0;
fail:
    dhf_err_wrap("AdamW state");
    dhf_agg_adamw_free(o);
    return -1;
}

void dhf_agg_adamw_free(dhf_agg_adamw *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->num_params; i++) {
        dhf_free(o->exp_avg[i]);
        dhf_free(o->exp_avg_sq[i]);
    }
    memset(o, 0, sizeof *o);
}

int dhf_agg_adamw_step(dhf_agg_adamw *o, dhf_aggregator *a)
{
    if (o->num_params != a->num_params || a->num_params < 1)
        return dhf_err_set("AdamW: state holds %d parameters, the network %d", o->num_params,
                           a->num_params);
    int64_t step = o->step + 1;
    /* params[0] is mixing_weights (group 0), the rest the bottlenecks (group 1) */
    DHF_TRY(dhf_adamw_step(a->params, o->exp_avg, o->exp_avg_sq, 1, step, &o->mixing),
            "AdamW step (mixing weights)");
    DHF_TRY(dhf_adamw_step(a->params + 1, o->exp_avg + 1, o->exp_avg_sq + 1, a->num_params - 1,
                           step, &o->bottlenecks), "AdamW step (bottlenecks)");
    o->step = step;
    return 0;
fail:
    return -1;
}
