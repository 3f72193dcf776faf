/* aggregator.h — the aggregation network of Diffusion Hyperfeatures: one bottleneck
 * per layer (shared across timesteps) and S*L mixing weights,
 *
 *   desc = sum_{s,l} softmax(w)[s*L + l] * B_l(resize_R(r_{l,s}))        [P, R, R]
 *
 * computed in one of two orders with the same result (to float32 rounding):
 *  - DHF_AGG_STRAIGHTFORWARD: the paper's order, one bottleneck call per (s, l) on the
 *    input resized to R x R;
 *  - DHF_AGG_FAST: per layer, the S timesteps (and all images) as one batch, conv1 and
 *    shortcut at the layer's native resolution before the upsampling.
 * Parameters are autograd leaves; a training step is forward, loss, dhf_backward and
 * dhf_adamw_step over dhf_aggregator_params(). This is the network and its libtorch
 * forward; the hand-written CPU engine (src/engine) runs it through agg_engine.h. */
#ifndef DHF_TRAIN_AGGREGATOR_H
#define DHF_TRAIN_AGGREGATOR_H

#include <stdint.h>

#include "core/config.h"
#include "core/safetensors.h"
#include "shim/torch_shim.h"
#include "train/bottleneck.h"

#define DHF_AGG_MAX_LAYERS 64
#define DHF_AGG_PARAM_NAME 64

/* in the order of the config key aggregation_order's choices */
typedef enum { DHF_AGG_FAST = 0, DHF_AGG_STRAIGHTFORWARD = 1 } dhf_agg_order;

typedef struct {
    int num_layers;                        /* L */
    int num_timesteps;                     /* S */
    int proj_dim;                          /* P */
    int out_res;                           /* R */
    int channels[DHF_AGG_MAX_LAYERS];      /* C_l */
    dhf_agg_order order;                   /* used by dhf_aggregator_forward */
    /* Memory-lean training step on libtorch autograd (fast order, step.h; config key
     * recompute_layers): this many layers, cheapest forward first, drop their autograd
     * graph after the forward and rebuild it in the backward (exact; costs their
     * forward twice, saves ~their activations). 0 keeps every graph (plain autograd);
     * values >= L recompute all layers. The engine's step (src/engine) ignores it. */
    int recompute_layers;
} dhf_agg_config;

typedef struct {
    dhf_agg_config cfg;
    dhf_bottleneck bneck[DHF_AGG_MAX_LAYERS];
    dhf_tensor mixing_weights;             /* [S*L] leaf, index s*L + l */
    /* flat parameter list: [0] mixing_weights, then bottlenecks.{l}.<name> in layer
     * order; names as in the fixtures and checkpoints */
    int num_params;
    dhf_tensor params[1 + DHF_AGG_MAX_LAYERS * DHF_BNECK_NPARAMS];          /* BORROWED */
    char names[1 + DHF_AGG_MAX_LAYERS * DHF_BNECK_NPARAMS][DHF_AGG_PARAM_NAME];
} dhf_aggregator;

/* The run-time choices of the config for the network (aggregation_order,
 * recompute_layers) into *ac, and mixed_precision on `dev` into *compute (for
 * dhf_aggregator_set_compute_dtype). Errors name the key and the choices. The choices
 * of who runs it are the engine's (dhf_engine_options_from_config). */
int dhf_agg_options_from_config(const dhf_config *cfg, dhf_device dev, dhf_agg_config *ac,
                                dhf_dtype *compute);

/* "fast" | "straightforward" (config key aggregation_order). */
int dhf_agg_order_parse(const char *s, dhf_agg_order *out);
const char *dhf_agg_order_name(dhf_agg_order o);

/* Allocates and initialises (mixing weights 1, bottlenecks as dhf_bottleneck_init with
 * a per-layer seed derived from `seed`). Returns 0, or -1 with dhf_err_msg(). */
int dhf_aggregator_init(dhf_aggregator *a, const dhf_agg_config *cfg, uint64_t seed);
void dhf_aggregator_free(dhf_aggregator *a);     /* zeroed struct or NULL ok */

/* Copies every parameter "<prefix><name>" from f (shapes must match exactly); no
 * autograd is recorded. Errors name the file and the tensor. */
int dhf_aggregator_load(dhf_aggregator *a, const dhf_st_file *f, const char *prefix);

/* feats[l]: [B, S, C_l, H_l, W_l] (B images, native resolution, no grad needed).
 * *desc NEW [B, P, R, R], differentiable w.r.t. the parameters, on libtorch (the
 * engine's forward: dhf_agg_forward_run of agg_engine.h). */
int dhf_aggregator_forward(const dhf_aggregator *a, const dhf_tensor *feats,
                           dhf_tensor *desc);

/* 0 when feats has L tensors [B, S, C_l, h, w] as a expects (*batch = B); else -1
 * with a message naming the layer and the shape. */
int dhf_aggregator_check_feats(const dhf_aggregator *a, const dhf_tensor *feats, int64_t *batch);

/* Same, with an explicit order (cfg.order is ignored). */
int dhf_aggregator_forward_order(const dhf_aggregator *a, const dhf_tensor *feats,
                                 dhf_agg_order order, dhf_tensor *desc);

/* The contribution of layer l alone, sum_s w[s*L + l] * B_l(resize(r_{l,s})), with
 * w = softmax(mixing_weights) [S*L] given by the caller (differentiable or not).
 * *contrib NEW [B, P*R*R]. Summed over l it is the descriptor; the memory-lean
 * training step (step.h) recomputes single layers through it. */
int dhf_aggregator_layer_forward(const dhf_aggregator *a, const dhf_tensor *feats, int l,
                                 dhf_agg_order order, dhf_tensor w, dhf_tensor *contrib);

/* Mixed precision: every bottleneck's convolutions compute in dt (DHF_F32 = off,
 * DHF_BF16, DHF_F16; see dhf_bottleneck.compute_dtype). Parameters stay float32. */
int dhf_aggregator_set_compute_dtype(dhf_aggregator *a, dhf_dtype dt);

/* "auto" | "off" | "bf16" | "fp16" (config key mixed_precision) on a device: auto is
 * bf16 on CUDA, off (float32) on the CPU. */
int dhf_agg_mixed_precision_parse(const char *s, dhf_device dev, dhf_dtype *out);

/* Sets every parameter's .grad to undefined (the next backward allocates it). */
int dhf_aggregator_clear_grads(dhf_aggregator *a);
/* Zeroes every existing .grad in place: the buffers are reused by the next backward
 * (no per-step reallocation of the gradients). */
int dhf_aggregator_zero_grads(dhf_aggregator *a);

#endif
