/* optim.h — AdamW state for the aggregation network: first and second moments per
 * parameter and the step count, in the paper's two parameter groups (mixing weights;
 * bottlenecks). The update itself is the shim's dhf_adamw_step (torch.optim.AdamW
 * semantics); the state lives here so checkpoints can save and restore it. */
#ifndef DHF_TRAIN_OPTIM_H
#define DHF_TRAIN_OPTIM_H

#include <stdint.h>

#include "shim/torch_shim.h"
#include "train/aggregator.h"

#define DHF_AGG_MAX_PARAMS (1 + DHF_AGG_MAX_LAYERS * DHF_BNECK_NPARAMS)

typedef struct {
    int num_params;                               /* == aggregator's num_params */
    dhf_tensor exp_avg[DHF_AGG_MAX_PARAMS];       /* zeros like each parameter */
    dhf_tensor exp_avg_sq[DHF_AGG_MAX_PARAMS];
    int64_t step;                                 /* steps taken so far */
    dhf_adamw_hparams mixing;                     /* group 0: mixing_weights */
    dhf_adamw_hparams bottlenecks;                /* group 1: all bottleneck params */
} dhf_agg_adamw;

/* Zero moments, step 0; both groups get *hp. */
int dhf_agg_adamw_init(dhf_agg_adamw *o, const dhf_aggregator *a, const dhf_adamw_hparams *hp);
void dhf_agg_adamw_free(dhf_agg_adamw *o);        /* zeroed struct or NULL ok */
/* One update of every parameter from its .grad (parameters without a grad are
 * left alone, as torch does); increments o->step first (bias correction uses it). */
int dhf_agg_adamw_step(dhf_agg_adamw *o, dhf_aggregator *a);

#endif
