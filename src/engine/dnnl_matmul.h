/* dnnl_matmul.h — batched matrix products through oneDNN's matmul (AVX-512 and
 * AVX512-BF16 kernels, whatever BLAS libtorch was given): C[b] = A[b] B[b] (+ bias)
 * on caller-owned buffers with any element strides, so a Linear layer (B = W^T, a
 * strided view of PyTorch's [out, in] weight) and attention's Q K^T and P V on
 * narrowed or transposed views need no copies. Primitives are made once per shape
 * and kept (process-wide, thread-safe). Without oneDNN at build time every call
 * fails and dhf_dmm_available() is false. */
#ifndef DHF_ENGINE_DNNL_MATMUL_H
#define DHF_ENGINE_DNNL_MATMUL_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { DHF_DMM_F32 = 0, DHF_DMM_BF16 = 1 } dhf_dmm_dtype;

/* A [batch, M, K], B [batch, K, N], C [batch, M, N]; strides in elements per
 * dimension (batch, row, column). bias: [N] contiguous, or none. One dtype for all
 * (accumulation is float32 inside oneDNN either way). */
typedef struct {
    int64_t batch, M, K, N;
    int64_t a_stride[3], b_stride[3], c_stride[3];
    dhf_dmm_dtype dtype;
    bool bias;
} dhf_dmm_shape;

bool dhf_dmm_available(void);
/* 0, or -1 with dhf_err_set (naming the shape) when oneDNN has no usable (non-reference)
 * kernel for it or fails: the caller falls back to its reference path. */
int dhf_dmm_run(const dhf_dmm_shape *s, const void *a, const void *b, const void *bias,
                void *c);
/* The implementation oneDNN chose for the last shape made, e.g. "brg:avx512_core"
 * ("" before the first). */
const char *dhf_dmm_last_impl(void);

#endif
