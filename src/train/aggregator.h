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
 * dhf_adamw_step over dhf_aggregator_params(). */
#ifndef DHF_TRAIN_AGGREGATOR_H
#define DHF_TRAIN_AGGREGATOR_H

#include <stdint.h>

#include "core/config.h"
#include "core/safetensors.h"
#include "shim/torch_shim.h"
#include "train/bottleneck.h"

#define DHF_AGG_MAX_LAYERS 64
#define DHF_AGG_PARAM_NAME 64

typedef enum { DHF_AGG_FAST = 0, DHF_AGG_STRAIGHTFORWARD = 1 } dhf_agg_order;

/* Who runs the fast order's training step on the CPU: the hand-written forward and
 * backward over oneDNN (fastnet.h) when dhf was built with it (AUTO), or libtorch's
 * autograd. Both compute the same gradients (tested against the same fixtures). */
typedef enum {
    DHF_AGG_KERNELS_AUTO = 0, DHF_AGG_KERNELS_LIBTORCH = 1, DHF_AGG_KERNELS_ONEDNN = 2
} dhf_agg_kernels;

/* Who runs the 1x1 convolutions of that step: dhf's AVX-512 kernels (conv1x1.h) where
 * the CPU has AVX-512F (AUTO), or oneDNN's. */
typedef enum {
    DHF_AGG_1X1_AUTO = 0, DHF_AGG_1X1_OWN = 1, DHF_AGG_1X1_ONEDNN = 2
} dhf_agg_conv1x1;

struct dhf_fastnet;

typedef struct {
    int num_layers;                        /* L */
    int num_timesteps;                     /* S */
    int proj_dim;                          /* P */
    int out_res;                           /* R */
    int channels[DHF_AGG_MAX_LAYERS];      /* C_l */
    dhf_agg_order order;                   /* used by dhf_aggregator_forward */
    /* Memory-lean training step (fast order, step.h): this many layers, cheapest
     * forward first, drop their autograd graph after the forward and rebuild it in
     * the backward (exact; costs their forward twice, saves ~their activations).
     * 0 keeps every graph (plain autograd); values >= L recompute all layers. */
    int recompute_layers;
    dhf_agg_kernels kernels;               /* fast order on the CPU: see above */
    int conv_algo;                         /* oneDNN 3x3: dhf_dconv_algo (0 = auto) */
    dhf_agg_conv1x1 conv1x1;               /* 1x1 convolutions of the oneDNN step */
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
    /* workspace of the oneDNN training step, made on first use for the input shapes
     * (and remade when they change); owned */
    struct dhf_fastnet *fastnet;
    /* the same for forwards without autograd (validation, dhf eval): buffers shared
     * by the layers; owned */
    struct dhf_fastnet *fastnet_infer;
} dhf_aggregator;

/* The run-time choices of the config (aggregation_order, aggregation_kernels,
 * aggregation_conv_algorithm, aggregation_conv1x1) into *ac, and mixed_precision on `dev` into *compute
 * (for dhf_aggregator_set_compute_dtype). Errors name the key and the choices. */
int dhf_agg_options_from_config(const dhf_config *cfg, dhf_device dev, dhf_agg_config *ac,
                                dhf_dtype *compute);

/* "auto" | "libtorch" | "onednn" (config key aggregation_kernels). */
int dhf_agg_kernels_parse(const char *s, dhf_agg_kernels *out);
/* "auto" | "direct" | "winograd" (config key aggregation_conv_algorithm) -> dhf_dconv_algo */
int dhf_agg_conv_algo_parse(const char *s, int *out);
/* "auto" | "own" | "onednn" (config key aggregation_conv1x1) */
int dhf_agg_conv1x1_parse(const char *s, dhf_agg_conv1x1 *out);

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
 * *desc NEW [B, P, R, R], differentiable w.r.t. the parameters. With grad mode off the
 * fast order runs on the oneDNN kernels where dhf_aggregator_use_onednn says so. */
int dhf_aggregator_forward(const dhf_aggregator *a, const dhf_tensor *feats,
                           dhf_tensor *desc);

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

/* Whether the fast order runs on the oneDNN kernels (fastnet.h) for these features:
 * cfg.kernels allows it (auto or onednn) and it can (built with oneDNN, CPU float32
 * contiguous features and parameters, float32 convolutions, P a multiple of 128).
 * kernels onednn and it cannot: an error saying why. */
int dhf_aggregator_use_onednn(const dhf_aggregator *a, const dhf_tensor *feats, bool *yes);
/* The part of that which does not depend on the features (kernels, build, device,
 * dtype, P): whether CPU float32 features would run on oneDNN. */
bool dhf_aggregator_onednn_ready(const dhf_aggregator *a);

/* Sets every parameter's .grad to undefined (the next backward allocates it). */
int dhf_aggregator_clear_grads(dhf_aggregator *a);
/* Zeroes every existing .grad in place: the buffers are reused by the next backward
 * (no per-step reallocation of the gradients). */
int dhf_aggregator_zero_grads(dhf_aggregator *a);

#endif
