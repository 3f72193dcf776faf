/* engine.h — the CPU engine's one interface: a runner that computes the aggregation
 * network's fast order by hand over oneDNN (forward, and forward + backward for a
 * training step), owning the kernel choice and both workspaces (training and
 * inference), each made on first use and remade only when the input shapes change.
 *
 * The engine knows nothing of src/train: the caller hands it the network as a view
 * (dhf_engine_net: shapes and BORROWED parameter tensors), and the loss as a callback.
 * Where the runner cannot run a network (built without oneDNN, CUDA, mixed precision,
 * P not a multiple of 128) the caller uses its libtorch path; dhf_runner_use says which.
 *
 *   per layer l, samples n = b*S + s:
 *     o_{n} = bottleneck_l(resize_R(x_{l,b,s}))      conv1 and shortcut at native size
 *     desc[b] = sum_{s,l} softmax(mix)[s*L + l] * o_{n}                 [B, P, R, R] */
#ifndef DHF_ENGINE_ENGINE_H
#define DHF_ENGINE_ENGINE_H

#include <stdbool.h>

#include "core/config.h"
#include "shim/torch_shim.h"

#define DHF_ENGINE_MAX_LAYERS 64

/* Who runs the fast order on the CPU (config key aggregation_kernels; the values
 * follow the order of that key's choices). */
typedef enum {
    DHF_ENGINE_KERNELS_AUTO = 0,      /* the engine where it can run, else libtorch */
    DHF_ENGINE_KERNELS_ONEDNN = 1,    /* the engine, or an error saying why it cannot */
    DHF_ENGINE_KERNELS_LIBTORCH = 2   /* never the engine */
} dhf_engine_kernels;

/* The 3x3 convolution's algorithm (aggregation_conv_algorithm; choices' order). */
typedef enum {
    DHF_ENGINE_CONV_AUTO = 0, DHF_ENGINE_CONV_WINOGRAD = 1, DHF_ENGINE_CONV_DIRECT = 2
} dhf_engine_conv_algo;

/* Who runs the 1x1 convolutions (aggregation_conv1x1; choices' order): dhf's AVX-512
 * kernels (conv1x1.h) where the CPU has AVX-512F (auto), or oneDNN's. */
typedef enum {
    DHF_ENGINE_1X1_AUTO = 0, DHF_ENGINE_1X1_OWN = 1, DHF_ENGINE_1X1_ONEDNN = 2
} dhf_engine_conv1x1;

typedef struct {
    dhf_engine_kernels kernels;
    dhf_engine_conv_algo conv_algo;
    dhf_engine_conv1x1 conv1x1;
} dhf_engine_options;

/* One bottleneck's parameters, BORROWED (float32, contiguous, CPU for the engine):
 * conv weights OIHW, GroupNorm weight and bias. */
typedef struct {
    dhf_tensor conv1_w;       /* [Q, C, 1, 1]   Q = P / 4 */
    dhf_tensor gn1_w, gn1_b;  /* [Q] */
    dhf_tensor conv2_w;       /* [Q, Q, 3, 3] */
    dhf_tensor gn2_w, gn2_b;  /* [Q] */
    dhf_tensor conv3_w;       /* [P, Q, 1, 1] */
    dhf_tensor gn3_w, gn3_b;  /* [P] */
    dhf_tensor short_w;       /* [P, C, 1, 1] */
    dhf_tensor gns_w, gns_b;  /* [P] */
} dhf_engine_layer;

/* The network as the engine reads it. The backward writes each parameter's .grad. */
typedef struct {
    int num_layers, num_timesteps, proj_dim, out_res;   /* L, S, P, R */
    int channels[DHF_ENGINE_MAX_LAYERS];               /* C_l */
    int gn_groups;                                     /* GroupNorm groups (32) */
    double gn_eps;
    dhf_tensor mixing_weights;                         /* [S*L], index s*L + l */
    dhf_engine_layer layer[DHF_ENGINE_MAX_LAYERS];
    bool f32_compute;          /* false: mixed precision asked for, the engine declines */
    /* every parameter with its name, for messages (BORROWED) */
    int num_params;
    const dhf_tensor *params;
    const char (*param_names)[64];
} dhf_engine_net;

typedef struct dhf_runner dhf_runner;

/* The choices of the config keys aggregation_kernels, aggregation_conv_algorithm and
 * aggregation_conv1x1. Errors name the key and its choices. */
int dhf_engine_options_from_config(const dhf_config *cfg, dhf_engine_options *o);

/* Built with oneDNN and able to run the engine on this machine. */
bool dhf_engine_available(void);

int dhf_runner_create(dhf_runner **out, const dhf_engine_options *opt);
void dhf_runner_free(dhf_runner *r);                         /* NULL ok */

/* Whether the runner runs this network on CPU float32 features (its kernel choice
 * allows it, built with oneDNN, parameters on the CPU, float32 convolutions, P a
 * multiple of 128). A NULL runner never does. */
bool dhf_runner_ready(const dhf_runner *r, const dhf_engine_net *net);
/* The same for these features feats[l] [B, S, C_l, h_l, w_l] (CPU float32
 * contiguous). Kernels "onednn" and it cannot: an error saying why. */
int dhf_runner_use(const dhf_runner *r, const dhf_engine_net *net, const dhf_tensor *feats,
                   bool *yes);

/* Forward without autograd on the inference workspace (the layers share one set of
 * buffers): desc NCHW [B, P, R, R] float32, written. */
int dhf_runner_forward(dhf_runner *r, const dhf_engine_net *net, const dhf_tensor *feats,
                       float *desc);

/* The loss of a training step, called between the forward and the backward: the
 * descriptor is in the caller's buffer; sets *gdesc to dloss/ddesc, NCHW [B, P, R, R]
 * (valid until it returns to the runner). 0 or -1 (message set). */
typedef int (*dhf_engine_loss_fn)(void *ctx, const float **gdesc);

/* Forward keeping the activations (training workspace) into desc (NCHW [B, P, R, R],
 * the caller's), loss(ctx, &gdesc), then the backward: writes (overwrites) the .grad
 * of every parameter of net. */
int dhf_runner_forward_backward(dhf_runner *r, const dhf_engine_net *net,
                                const dhf_tensor *feats, float *desc, dhf_engine_loss_fn loss,
                                void *ctx);

/* "conv2 fwd jit_wino_4x3:avx512_core, ..." of the last workspace made ("" before). */
const char *dhf_runner_describe(const dhf_runner *r);
/* Whether the last forward ran on the engine's inference workspace (tests). */
bool dhf_runner_has_inference_workspace(const dhf_runner *r);

#endif
