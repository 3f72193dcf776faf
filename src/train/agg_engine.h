/* agg_engine.h — the aggregation network on the CPU engine (src/engine): the view of
 * its parameters the engine reads, and the forward that takes the engine where the
 * runner can run it and libtorch elsewhere. */
#ifndef DHF_TRAIN_AGG_ENGINE_H
#define DHF_TRAIN_AGG_ENGINE_H

#include <stdbool.h>

#include "engine/engine.h"
#include "train/aggregator.h"

/* Fills *net with a's shapes and BORROWED parameter handles (valid while a lives). */
void dhf_agg_engine_net(const dhf_aggregator *a, dhf_engine_net *net);

/* Whether runner r (NULL: never) runs a's fast order on CPU float32 features. */
bool dhf_agg_engine_ready(const dhf_aggregator *a, const dhf_runner *r);

/* dhf_aggregator_forward_order, except that the fast order with grad mode off runs
 * on the engine where dhf_runner_use says so. *desc NEW [B, P, R, R]. */
int dhf_agg_forward_run(const dhf_aggregator *a, dhf_runner *r, dhf_agg_order order,
                        const dhf_tensor *feats, dhf_tensor *desc);

#endif
