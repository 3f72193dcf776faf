/* nn_layers.h — the primitive layers the SD networks are made of (Conv2d, Linear,
 * GroupNorm, LayerNorm): a small struct holding its parameters, a load function
 * that names them (diffusers / transformers state-dict names) and a forward
 * function over the shim. Also the bridge from shim failures to core/error.h.
 *
 * Forward functions return 0 / -1 (message in dhf_err_msg()) and write a NEW handle
 * to *out on success only. Inputs are BORROWED. */
#ifndef DHF_EXTRACT_NN_LAYERS_H
#define DHF_EXTRACT_NN_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "extract/sd_params.h"
#include "shim/torch_shim.h"

/* Copies dhf_last_error() into the C error channel, prefixed with the op's name
 * (the text of `call` up to its '('). Always returns -1. */
int dhf_nn_shim_fail(const char *call);

/* In a function with `int rc` and a `done:` label: run a shim call, jump on failure. */
#define DHF_SHIM(call)                                  \
    do {                                                \
        if ((call) != DHF_OK) {                         \
            rc = dhf_nn_shim_fail(#call);               \
            goto done;                                  \
        }                                               \
    } while (0)
/* Same for our own functions (0 / -1 with the message already set). (DHF_TRY of
 * core/torch/shim_try.h is the other style: a shim call, a message, a `fail:` label.) */
#define DHF_CHECK(call)                                   \
    do {                                                \
        if ((call) != 0) {                              \
            rc = -1;                                    \
            goto done;                                  \
        }                                               \
    } while (0)

/* Ends the scope opened at the top of a forward function; on success moves the
 * given outputs (NULL entries skipped) to the parent scope first. Returns rc, or
 * -1 if the scope could not be closed. */
int dhf_nn_scope_finish(int rc, dhf_tensor *outs[], int n_outs);

/* Detaches t from every open shim scope (dhf_keep once per level), so it survives
 * until dhf_free: for tensors made inside a callback that must outlive it. */
void dhf_nn_unscope(dhf_tensor t);

/* *t = a contiguous copy of *t when it is a view (channels-last activations, before
 * a caller reads them as plain NCHW); the old handle is left to the open scope. */
int dhf_nn_plain(dhf_tensor *t);

/* ---- Conv2d: w [O, I, k, k], b [O] (optional) -------------------------------
 * w_packed: the weights in oneDNN's layout, empty until the first forward on the
 * oneDNN path (unet_kernels.h), which then empties w. Both live in the params list. */
typedef struct {
    dhf_tensor w, b, w_packed;
    int in_ch, out_ch, kernel, stride, pad;
    bool pad_right_bottom;   /* F.pad(x, (0,1,0,1)) before the conv (VAE Downsample2D) */
} dhf_conv2d_layer;

int dhf_conv2d_load(dhf_conv2d_layer *c, dhf_params *p, const char *name, int in_ch, int out_ch,
                    int kernel, int stride, int pad, bool bias);
int dhf_conv2d_forward(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor *out);
/* NEW out = conv(x) + acc (acc shaped like the output; a residual added in the same
 * pass on the oneDNN path). bias, when not NULL, replaces the layer's own (a per-call
 * bias: the layer's plus a time embedding). */
int dhf_conv2d_forward_acc(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor acc,
                           dhf_tensor *out);
int dhf_conv2d_forward_bias(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor bias,
                            dhf_tensor *out);
/* acc += conv(x) in place (acc shaped like the output, owned by the caller) */
int dhf_conv2d_forward_acc_(const dhf_conv2d_layer *c, dhf_tensor x, dhf_tensor acc);

/* ---- Linear: w [O, I], b [O] (optional); y = x w^T + b on the last dim ----
 * w_packed: as for Conv2d (NULL for a layer made by hand: then never packed). */
typedef struct {
    dhf_tensor w, b, w_packed;
    int in_f, out_f;
} dhf_linear_layer;

int dhf_linear_load(dhf_linear_layer *l, dhf_params *p, const char *name, int in_f, int out_f,
                    bool bias);
int dhf_linear_forward(const dhf_linear_layer *l, dhf_tensor x, dhf_tensor *out);
/* acc += linear(x) in place (acc contiguous, shaped like the output) */
int dhf_linear_forward_acc_(const dhf_linear_layer *l, dhf_tensor x, dhf_tensor acc);

/* ---- GroupNorm over NCHW, affine ------------------------------------------ */
typedef struct {
    dhf_tensor w, b;
    int groups, channels;
    double eps;
} dhf_groupnorm;

/* Error (naming `name` and the file) when channels is not a multiple of groups. */
int dhf_groupnorm_load(dhf_groupnorm *g, dhf_params *p, const char *name, int groups,
                       int channels, double eps);
int dhf_groupnorm_forward(const dhf_groupnorm *g, dhf_tensor x, dhf_tensor *out);
/* NEW out = silu(GroupNorm(x)): one fused pass on the oneDNN path */
int dhf_groupnorm_silu_forward(const dhf_groupnorm *g, dhf_tensor x, dhf_tensor *out);

/* ---- LayerNorm over the last dimension, affine ------------------------------ */
typedef struct {
    dhf_tensor w, b;
    int dim;
    double eps;
} dhf_layernorm;

int dhf_layernorm_load(dhf_layernorm *l, dhf_params *p, const char *name, int dim, double eps);
int dhf_layernorm_forward(const dhf_layernorm *l, dhf_tensor x, dhf_tensor *out);

#endif
