/* unet_kernels.h — the one switch between the extractor's two CPU paths:
 * `extract_kernels: onednn` (the default) runs the UNet's and VAE's convolutions and
 * Linear layers on oneDNN with weights packed once (engine/dnnl_iconv.h), GroupNorm+SiLU
 * as one pass (engine/groupnorm_nhwc.h), the attention core by blocks of query rows
 * (engine/attention_rows.h) and the remaining batched products on oneDNN's matmul
 * (engine/dnnl_matmul.h), all over channels-last activations (AVX-512 / AVX512-BF16);
 * `libtorch` keeps libtorch's ops, the reference every parity test also holds the
 * oneDNN path to. CUDA tensors, other dtypes, and shapes oneDNN has no real kernel for
 * always take the libtorch op. Process-wide setting; before any dhf_kernels_set,
 * DHF_EXTRACT_KERNELS in the environment chooses (tests use it). */
#ifndef DHF_EXTRACT_UNET_KERNELS_H
#define DHF_EXTRACT_UNET_KERNELS_H

#include "shim/torch_shim.h"

typedef enum { DHF_KERNELS_ONEDNN = 0, DHF_KERNELS_LIBTORCH = 1 } dhf_extract_kernels;

/* "onednn" | "libtorch"; error naming the key otherwise */
int dhf_kernels_parse(const char *s, dhf_extract_kernels *out);
void dhf_kernels_set(dhf_extract_kernels k);
dhf_extract_kernels dhf_kernels_get(void);
const char *dhf_kernels_name(dhf_extract_kernels k);
/* What the CPU products run on now: "onednn", or "libtorch" (chosen, or dhf was built
 * without oneDNN). */
const char *dhf_kernels_active(void);

/* NEW out = x W^T + b: x [..., K], w [N, K], b [N] or NULL (PyTorch's Linear).
 * w_packed: NULL, or the layer's tensor for w in oneDNN's layout: then a contiguous x
 * runs as a 1x1 convolution over M = numel/K pixels (oneDNN's brgconv_1x1, faster
 * than its matmul on these shapes), with w packed on first use and emptied as for
 * dhf_kern_conv2d (in_f / out_f: the layer's K and N, which w no longer shows then).
 * Without w_packed: oneDNN's matmul on w as it is. */
int dhf_kern_linear(dhf_tensor x, dhf_tensor w, dhf_tensor w_packed, dhf_tensor b,
                    int64_t in_f, int64_t out_f, dhf_tensor *out);
/* acc += x W^T + b in place (acc [..., N] contiguous): the residual stream of a
 * transformer block takes the sum in the same pass on the oneDNN path. */
int dhf_kern_linear_acc_(dhf_tensor acc, dhf_tensor x, dhf_tensor w, dhf_tensor w_packed,
                         dhf_tensor b, int64_t in_f, int64_t out_f);
/* NEW out [B, M, N] = a [B, M, K] . b [B, K, N] (either may be a strided view). */
int dhf_kern_bmm(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
/* out [B, M, N] (a view, written in place) = a . b. */
int dhf_kern_bmm_out(dhf_tensor out, dhf_tensor a, dhf_tensor b);

/* ---- convolutions and GroupNorm on channels-last activations ----------------------
 * On the oneDNN path the UNet and VAE keep their activations channels-last (NCHW sizes,
 * NHWC strides: oneDNN's convolution layout and the attention's token layout at once),
 * so no convolution reorders its input or output; libtorch's elementwise ops, cat and
 * interpolate keep that layout. A convolution's weights are packed into oneDNN's
 * layout on its first call and the OIHW copy is released, so the model is held once. */

/* in / out channels, k x k kernel, stride, zero padding top / left / bottom / right */
typedef struct {
    int in_ch, out_ch, k, stride, pad_t, pad_l, pad_b, pad_r;
} dhf_kern_conv_geom;

/* NEW out = conv2d(x, w) + b (b may be NULL) for x [N, C, H, W] in any layout; w
 * [O, C, k, k]; w_packed: a tensor the layer owns, empty until the oneDNN path packs w
 * into it. oneDNN path: out is channels-last, and after packing w is emptied (unless
 * dhf_kernels_keep_oihw). libtorch path (or a shape oneDNN has no kernel for): w is
 * first restored from w_packed if it was emptied. accumulate: NULL, or a tensor shaped
 * like the output that is added (out = conv + b + accumulate; on the oneDNN path the
 * sum is oneDNN's post-op into a copy of it). */
int dhf_kern_conv2d(dhf_tensor x, dhf_tensor w, dhf_tensor w_packed, dhf_tensor b,
                    const dhf_kern_conv_geom *g, dhf_tensor accumulate, dhf_tensor *out);
/* acc += conv2d(x, w) + b in place (acc shaped like the output, owned by the caller):
 * on the oneDNN path a channels-last acc is the convolution's destination, no copy. */
int dhf_kern_conv2d_acc_(dhf_tensor acc, dhf_tensor x, dhf_tensor w, dhf_tensor w_packed,
                         dhf_tensor b, const dhf_kern_conv_geom *g);
/* NEW out = GroupNorm(x; groups, w, b, eps), then SiLU when silu: one fused pass
 * (engine/groupnorm_nhwc.h) for a channels-last CPU float32/bfloat16 x on the oneDNN
 * path, libtorch's group_norm (+ silu_) otherwise. */
int dhf_kern_groupnorm(dhf_tensor x, int groups, dhf_tensor w, dhf_tensor b, double eps,
                       bool silu, dhf_tensor *out);
/* NCHW sizes with NHWC strides (size-1 dimensions may have any stride) */
bool dhf_kern_is_channels_last(dhf_tensor x);
/* NEW: x itself (another handle) when channels-last, else a channels-last copy */
int dhf_kern_channels_last(dhf_tensor x, dhf_tensor *out);
/* Is the channels-last oneDNN path on for tensors like x (CPU float32 / bfloat16)? */
bool dhf_kern_fast_layout(dhf_tensor x);
/* Is the oneDNN path on for a CPU float32 / bfloat16 tensor like x (any rank)? */
bool dhf_kern_fast(dhf_tensor x);
/* Keep every OIHW weight beside its packed copy (bench_extract, which alternates the
 * two paths in one process; costs the conv weights' memory twice). */
void dhf_kernels_keep_oihw(bool keep);

/* What the kernels did since the last reset (bench_extract prints it). */
typedef struct {
    long conv_onednn, conv_relayout, conv_libtorch, gn_fused, gn_libtorch;
    long linear_1x1;   /* Linear layers run as oneDNN 1x1 convolutions */
    long attn_rows;    /* attention cores run by engine/attention_rows.h */
} dhf_kern_stats;
void dhf_kern_stats_get(dhf_kern_stats *s);
void dhf_kern_count_attention(void);   /* attention.c: one core on attention_rows */
void dhf_kern_stats_reset(void);

#endif
