/* fastnet.h — (inside the engine; callers use engine.h's runner) the fast order of the
 * aggregation network written out by hand for the CPU, llm.c style: an explicit forward that keeps what the backward needs and an
 * explicit backward, over oneDNN convolutions (dnnl_conv.h) on channel-blocked
 * activations (blocked.h) and fused row kernels (blk_ops.h). Same mathematics as
 * src/train/aggregator.c's fast order (conv1 and shortcut at native resolution, the S
 * timesteps of a layer as one batch), without autograd's per-op tensors:
 *
 *   per layer l, samples n = b*S + s (N = B*S):
 *     y   = [conv1; shortcut](x)                       native h x w, Q + P channels
 *     r1  = relu(GN1(U y1))          c2 = conv2(r1)    r2 = relu(GN2(c2))
 *     c3  = conv3(r2)                o  = relu(GN3(c3) + GNs(U ys))
 *     desc[b] += w[s*L + l] * o                       (U: bilinear resize to R x R)
 *
 * Upsampled maps are made a row at a time and never stored. Memory: for each layer
 * r1, c2, r2 ([N, Q, R, R]), c3 ([N, P, R, R]), y and the blocked input, plus
 * scratch shared by the layers. A dhf_fastnet is made for one set of input shapes
 * and reused across steps (no per-step allocation). */
#ifndef DHF_ENGINE_FASTNET_H
#define DHF_ENGINE_FASTNET_H

#include <stdbool.h>

#include "engine/dnnl_conv.h"
#include "engine/engine.h"
#include "shim/torch_shim.h"

typedef struct dhf_fastnet dhf_fastnet;

/* feats[l]: CPU float32 [B, S, C_l, h_l, w_l]. training: keep every layer's
 * activations and make the backward's buffers; false: forward only, the layers share
 * one set of buffers (a fraction of the memory). own1x1: the 1x1 convolutions' forwards
 * and conv3's backward-data on conv1x1.h (needs AVX-512F), else all on oneDNN. */
int dhf_fastnet_create(dhf_fastnet **out, const dhf_engine_net *net, const dhf_tensor *feats,
                       bool training, dhf_dconv_algo conv_algo, bool own1x1);
bool dhf_fastnet_fits(const dhf_fastnet *f, const dhf_engine_net *net, const dhf_tensor *feats);
bool dhf_fastnet_training(const dhf_fastnet *f);
void dhf_fastnet_free(dhf_fastnet *f);                 /* NULL ok */

#ifdef DHF_PROFILE
/* Wall seconds of the last dhf_fastnet_forward / _backward, and the parts of them
 * spent in the convolutions (the rest: packing, the row passes, GN bookkeeping).
 * Only in a DHF_PROFILE build (the benches'): the product has no timers. */
enum {
    DHF_FN_PASS_PACK, DHF_FN_PASS_GN1_STATS, DHF_FN_PASS_R1, DHF_FN_PASS_GN2_STATS,
    DHF_FN_PASS_R2, DHF_FN_PASS_GN3_STATS, DHF_FN_PASS_OUTPUT, DHF_FN_PASS_B_OUT_SUMS,
    DHF_FN_PASS_B_OUT_GRADS, DHF_FN_PASS_B_GN2, DHF_FN_PASS_B_GN1, DHF_FN_PASS_COUNT
};
/* "pack", "gn1 stats", ...: what each pass_s[] entry times */
extern const char *const dhf_fastnet_pass_names[DHF_FN_PASS_COUNT];
typedef struct {
    double forward_s, conv_forward_s;
    double backward_s, conv_backward_data_s, conv_backward_weights_s;
    double pass_s[DHF_FN_PASS_COUNT];   /* the row passes, summed over the layers */
} dhf_fastnet_profile;
void dhf_fastnet_get_profile(const dhf_fastnet *f, dhf_fastnet_profile *p);
#endif

/* "conv2 fwd jit_wino_4x3:avx512_core, ..." of the first layer, for logs */
const char *dhf_fastnet_describe(const dhf_fastnet *f);

/* desc: NCHW [B, P, R, R] float32, written. Keeps the activations for
 * dhf_fastnet_backward when for_backward is true (a training fastnet only). */
int dhf_fastnet_forward(dhf_fastnet *f, const dhf_engine_net *net, const dhf_tensor *feats,
                        bool for_backward, float *desc);

/* gdesc: dloss/ddesc, NCHW [B, P, R, R]. Writes (overwrites) the .grad of every
 * parameter of net with dloss/dparam. Needs the preceding forward (same net, feats,
 * parameters unchanged) with for_backward. */
int dhf_fastnet_backward(dhf_fastnet *f, const dhf_engine_net *net, const float *gdesc);

#endif
