/* dnnl_iconv.h — inference 2-D convolutions over channels-last (NHWC) activations
 * through oneDNN, for the extractor's UNet and VAE: float32 or bfloat16 (float32
 * accumulation inside oneDNN), any kernel size, stride and asymmetric zero padding
 * (the VAE's F.pad(0,1,0,1) needs no copy), optional bias, optional accumulation into
 * the destination (dst += conv: a residual add fused as oneDNN's sum post-op).
 *
 * Weights are packed once into the layout oneDNN's kernel wants for the shape they are
 * packed for (the caller keeps the packed buffer and may drop its OIHW copy); the
 * buffer carries its layout, so another input size reuses it (oneDNN takes that
 * layout, or the weights are reordered per call for that size). Primitives are made
 * once per (shape, weights layout) and kept
 * (process-wide, thread-safe); their scratchpads share one buffer. Activations are
 * never copied: the caller's buffers are handed to oneDNN as they are. Without oneDNN
 * at build time every call fails and dhf_iconv_available() is false. */
#ifndef DHF_ENGINE_DNNL_ICONV_H
#define DHF_ENGINE_DNNL_ICONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/dnnl_matmul.h" /* dhf_dmm_dtype */

typedef struct {
    int64_t N, C, O, H, W;         /* input N x C x H x W (NHWC in memory), O outputs */
    int k, stride;                 /* k x k kernel */
    int pad_t, pad_l, pad_b, pad_r;
    dhf_dmm_dtype dtype;           /* of src, weights, bias and dst */
    bool bias;                     /* bias [O] */
    bool accumulate;               /* dst = conv(src) (+ bias) + dst */
} dhf_iconv_shape;

bool dhf_iconv_available(void);
/* output height / width of s */
int64_t dhf_iconv_out_h(const dhf_iconv_shape *s);
int64_t dhf_iconv_out_w(const dhf_iconv_shape *s);

/* Bytes of s's packed weights. 0, or -1 with dhf_err_set (naming the shape) when
 * oneDNN has only its reference kernel for s (the caller keeps its own path). */
int dhf_iconv_packed_bytes(const dhf_iconv_shape *s, size_t *bytes);
/* w_oihw [O, C, k, k] (dtype of s) -> packed (dhf_iconv_packed_bytes of it). */
int dhf_iconv_pack(const dhf_iconv_shape *s, const void *w_oihw, void *packed);
/* The inverse, for a caller that dropped its OIHW copy and needs it back. */
int dhf_iconv_unpack(const dhf_iconv_shape *s, const void *packed, void *w_oihw);
/* dst [N, OH, OW, O] = conv(src [N, H, W, C], packed) + bias (+ dst when accumulate). */
int dhf_iconv_forward(const dhf_iconv_shape *s, const void *src, const void *packed,
                      const void *bias, void *dst);
/* The implementation oneDNN chose for s (e.g. "brg:avx512_core"), or "" if none yet. */
const char *dhf_iconv_impl(const dhf_iconv_shape *s);

#endif
