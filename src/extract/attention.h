/* attention.h — the multi-head attention core shared by the UNet, the VAE mid block
 * and the CLIP text encoder: softmax(scale * q k^T [+ causal mask]) v, computed in
 * chunks of queries so the score matrix never exceeds a memory budget (same result
 * as the unchunked product: every query row is independent). No SDPA: libtorch 1.13
 * lacks it, and diffusers v0.14 computes exactly these three steps. */
#ifndef DHF_EXTRACT_ATTENTION_H
#define DHF_EXTRACT_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "shim/torch_shim.h"

/* Budget for one chunk's scores [B*heads, rows, M] in bytes (default 8 MiB: the
 * scores of a chunk stay in cache between the QK^T product, the softmax and the
 * product with V). 0 restores the default. */
void dhf_attention_set_chunk_bytes(size_t bytes);
size_t dhf_attention_chunk_bytes(void);

/* q [B, N, H*d], k [B, M, H*d], v [B, M, H*dv] -> NEW [B, N, H*dv]. Head h owns
 * channels [h*d, (h+1)*d) (diffusers' reshape(B, N, heads, d)). The scores are
 * scale * q k^T; the scale is applied to the queries before the product (diffusers
 * applies it after, as baddbmm's alpha: the same up to float rounding, and one pass
 * over N*d values instead of N*M). causal: query i sees keys j <= i only (N == M). */
int dhf_attention_core(dhf_tensor q, dhf_tensor k, dhf_tensor v, int heads, double scale,
                       bool causal, dhf_tensor *out);

#endif
