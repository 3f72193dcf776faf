/* bottleneck.h — one layer's bottleneck of the aggregation network, as detectron2's
 * BottleneckBlock in the Diffusion Hyperfeatures code:
 *
 *   out = ReLU( GN3(conv3( ReLU(GN2(conv2_3x3( ReLU(GN1(conv1(x))) ))) ))
 *               + GNs(shortcut(x)) )
 *
 * conv1 1x1 C->P/4, conv2 3x3 pad 1 P/4->P/4, conv3 1x1 P/4->P, shortcut 1x1 C->P;
 * no conv bias; every GN has 32 groups, eps 1e-5, affine. Two entry points compute
 * the same function: from input already resized to R x R (the paper's order), or
 * from the native-resolution input, running the two 1x1 convolutions before the
 * bilinear upsampling (exact: both are linear and bilinear weights sum to 1).
 *
 * Parameters are autograd leaves (requires_grad) owned by the struct; their names
 * under a layer prefix ("bottlenecks.{l}.") follow the fixtures / state_dict. */
#ifndef DHF_TRAIN_BOTTLENECK_H
#define DHF_TRAIN_BOTTLENECK_H

#include <stdint.h>

#include "shim/torch_shim.h"

#define DHF_BNECK_GN_GROUPS 32
#define DHF_BNECK_GN_EPS 1e-5

enum {
    DHF_BN_CONV1_W = 0, DHF_BN_CONV1_GN_W, DHF_BN_CONV1_GN_B,
    DHF_BN_CONV2_W, DHF_BN_CONV2_GN_W, DHF_BN_CONV2_GN_B,
    DHF_BN_CONV3_W, DHF_BN_CONV3_GN_W, DHF_BN_CONV3_GN_B,
    DHF_BN_SHORT_W, DHF_BN_SHORT_GN_W, DHF_BN_SHORT_GN_B,
    DHF_BNECK_NPARAMS
};

typedef struct {
    int in_channels;                    /* C_l */
    int proj_dim;                       /* P (multiple of 128: P/4 split in 32 groups) */
    dhf_tensor p[DHF_BNECK_NPARAMS];    /* indexed by the enum above */
    /* dtype the convolutions (dhf_conv2d: conv1/shortcut, conv2, and the paper order's
     * conv3) compute in: DHF_F32 (init), or DHF_BF16 / DHF_F16 for mixed precision on
     * CUDA: input and weight are cast, the output comes back as float32, so GroupNorm,
     * the GN-folded 1x1 products, the loss and the parameters stay float32 */
    dhf_dtype compute_dtype;
} dhf_bottleneck;

/* "conv1.weight", "conv1.norm.weight", ..., "shortcut.norm.bias" (enum order). */
extern const char *const dhf_bottleneck_param_names[DHF_BNECK_NPARAMS];

/* Shape of parameter i for (in_channels, proj_dim): 4-D conv kernels (OIHW) or 1-D. */
void dhf_bottleneck_param_shape(int in_channels, int proj_dim, int i, int64_t shape[4],
                                int *ndim);

/* Allocates the parameters with the reference init: conv kernels c2_msra_fill
 * (normal, std = sqrt(2 / fan_out), fan_out = O*kh*kw), GN weight 1 and bias 0;
 * deterministic in `seed`. Returns 0, or -1 with dhf_err_msg(). */
int dhf_bottleneck_init(dhf_bottleneck *b, int in_channels, int proj_dim, uint64_t seed);
void dhf_bottleneck_free(dhf_bottleneck *b);   /* zeroed struct or NULL ok */

/* Paper order. x [N, C, R, R] (already resized) -> *out NEW [N, P, R, R]. */
int dhf_bottleneck_forward(const dhf_bottleneck *b, dhf_tensor x, dhf_tensor *out);

/* Fast order. x [N, C, h, w] at native resolution -> *out NEW [N, P, R, R], R = out_res:
 * conv1 and shortcut run at h x w and only their normalised maps are upsampled; the
 * GroupNorms are evaluated without keeping full-size inputs (gn_fused.h). `mult`
 * (NULL or [N], entries >= 0, may require grad) scales sample n's output. */
int dhf_bottleneck_forward_native(const dhf_bottleneck *b, dhf_tensor x, int64_t out_res,
                                  dhf_tensor mult, dhf_tensor *out);

/* Bilinear resize to R x R as the reference (align_corners false, no antialias);
 * x [N, C, h, w] -> *out NEW [N, C, R, R] (a view of x when h == w == R: exact). */
int dhf_agg_resize(dhf_tensor x, int64_t out_res, dhf_tensor *out);

#endif
