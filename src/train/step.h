/* step.h — one optimisation step on one image pair: aggregate both images' features
 * into descriptors, CLIP loss on the keypoint indices, backward, AdamW. The unit the
 * trainer repeats and bench/train times.
 *
 * The backward of the fast order can run memory-lean (cfg.recompute_layers > 0):
 * the descriptor is computed with the graphs of the recomputed layers dropped, the
 * loss gives G = dloss/ddesc, then each recomputed layer is run again with autograd
 * and back-propagated from sum(contribution * G) — the same gradients (the loss
 * depends on the parameters only through desc = sum_l contribution_l). */
#ifndef DHF_TRAIN_STEP_H
#define DHF_TRAIN_STEP_H

#include <stdint.h>

#include "engine/engine.h"
#include "train/aggregator.h"
#include "train/loss.h"
#include "train/optim.h"

typedef struct {
    double loss, loss_src, loss_trg;
    /* wall seconds: up to the descriptor and loss / everything after (backward, and
     * in the memory-lean order the recomputed layers' forward too) */
    double seconds_forward, seconds_backward;
} dhf_step_stats;

/* feats[l]: [2, S, C_l, H_l, W_l], image 0 = source, image 1 = target. Fills *res with
 * the loss (differentiable) and its parts, as dhf_clip_loss. */
int dhf_pair_loss(const dhf_aggregator *a, dhf_agg_order order, const dhf_tensor *feats,
                  const int64_t *src_idx, const int64_t *trg_idx, int K,
                  dhf_clip_loss_result *res);

/* Zeroes the grads, then loss and backward: every parameter's .grad holds dloss/dparam.
 * Fast order on the engine where runner r (may be NULL) runs it (engine.h); else
 * with cfg.recompute_layers > 0 memory-lean (see above); otherwise plain autograd over
 * the whole forward. *stats (may be NULL) gets the loss values. */
int dhf_pair_backward(dhf_aggregator *a, dhf_runner *r, dhf_agg_order order,
                      const dhf_tensor *feats, const int64_t *src_idx, const int64_t *trg_idx,
                      int K, dhf_step_stats *stats);

/* dhf_pair_backward, then one AdamW step; *stats gets the loss before the update.
 * A non-finite loss is an error and leaves the parameters untouched. */
int dhf_train_step(dhf_aggregator *a, dhf_runner *r, dhf_agg_adamw *opt, dhf_agg_order order,
                   const dhf_tensor *feats, const int64_t *src_idx, const int64_t *trg_idx,
                   int K, dhf_step_stats *stats);

#endif
