/* unet_kernels.h — the one switch between the extractor's two CPU paths for its
 * matrix products: `extract_kernels: onednn` (the default) runs every Linear layer and
 * attention's two batched products through oneDNN's matmul (engine/dnnl_matmul.h:
 * AVX-512 / AVX512-BF16 kernels, no copies of transposed or narrowed views);
 * `libtorch` keeps libtorch's ops (its BLAS), the reference every parity test also
 * holds the oneDNN path to. CUDA tensors, other dtypes, and shapes oneDNN has no
 * real kernel for always take the libtorch op. Process-wide setting; before any
 * dhf_kernels_set, DHF_EXTRACT_KERNELS in the environment chooses (tests use it). */
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

/* NEW out = x W^T + b: x [..., K], w [N, K], b [N] or NULL (PyTorch's Linear). */
int dhf_kern_linear(dhf_tensor x, dhf_tensor w, dhf_tensor b, dhf_tensor *out);
/* NEW out [B, M, N] = a [B, M, K] . b [B, K, N] (either may be a strided view). */
int dhf_kern_bmm(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
/* out [B, M, N] (a view, written in place) = a . b. */
int dhf_kern_bmm_out(dhf_tensor out, dhf_tensor a, dhf_tensor b);

#endif
