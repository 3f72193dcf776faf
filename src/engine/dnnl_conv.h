/* dnnl_conv.h — 2-D convolutions (no bias, stride 1, zero padding k/2, k = 1 or 3)
 * on channel-blocked activations (blocked.h, oneDNN's nChw16c) through oneDNN's C API:
 * forward, backward-data and backward-weights, with weights in PyTorch's OIHW layout.
 * A dhf_dconv owns, for one shape, the oneDNN primitives, the weights reorders and
 * the reordered-weights buffers; the process-wide oneDNN engine and stream are
 * created on first use. Activations are never copied: the caller's buffers are
 * handed to oneDNN as they are. Not thread-safe per object (one caller at a time).
 * Without oneDNN at build time (no DHF_HAVE_DNNL) every function is a stub:
 * dhf_dconv_available() is false and dhf_dconv_create fails. */
#ifndef DHF_ENGINE_DNNL_CONV_H
#define DHF_ENGINE_DNNL_CONV_H

#include <stdbool.h>

typedef struct dhf_dconv dhf_dconv; /* opaque */

typedef enum {
    DHF_DCONV_AUTO = 0,     /* winograd for 3x3 when oneDNN has a non-ref one, else direct */
    DHF_DCONV_DIRECT = 1,
    DHF_DCONV_WINOGRAD = 2  /* falls back to direct where winograd is missing or ref */
} dhf_dconv_algo;

/* true when dhf was built with oneDNN (libdnnl-dev) */
bool dhf_dconv_available(void);

/* N images, C in channels, O out channels, H x W (same in and out), k in {1,3}.
 * need_bwd_data false: no backward-data primitive is made. Fails (naming the shape)
 * when oneDNN only has its reference implementation for an op, which would take
 * hours. Returns 0 or -1 with dhf_err_set. */
int dhf_dconv_create(dhf_dconv **out, int N, int C, int O, int H, int W, int k,
                     bool need_bwd_data, dhf_dconv_algo algo);
void dhf_dconv_free(dhf_dconv *c); /* NULL ok */
/* The implementations chosen, e.g. "fwd jit_wino_4x3:avx512_core, bwd_d ..., bwd_w ...";
 * valid while c lives. */
const char *dhf_dconv_impl(const dhf_dconv *c);

/* src/dst/dsrc/ddst: blocked (blocked.h) [N, C or O, H, W]; w: OIHW [O, C, k, k] float32.
 * Inputs must have zero padding channels (as dhf_blk_pack leaves them); note that
 * oneDNN rewrites the padding channels of every activation buffer it is handed with
 * zeros (even inputs), so an input buffer must be writable. Outputs come back with
 * zero padding channels. */
int dhf_dconv_forward(dhf_dconv *c, const float *src, const float *w, float *dst);
int dhf_dconv_backward_data(dhf_dconv *c, const float *ddst, const float *w, float *dsrc);
/* dw (OIHW) is OVERWRITTEN with dL/dw = sum over the batch. */
int dhf_dconv_backward_weights(dhf_dconv *c, const float *src, const float *ddst, float *dw);

#endif
