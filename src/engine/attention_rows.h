/* attention_rows.h — the attention core on CPU buffers for the extractor's oneDNN path:
 * for every head h, o[h] = softmax(q[h] kt[h]) v[h], computed block of query rows by
 * block of query rows, so the scores are only ever one [rows, M] block (a few MiB that
 * stay in cache between the two products and the softmax), never the [N, M] matrix.
 * Each block's full key row is in the block, so its softmax is exact in one pass (no
 * online rescaling needed). The two products are dense 2-D oneDNN matmuls (its brgemm
 * kernels); the softmax is two vectorised passes with float32 statistics whatever the
 * dtype (the row max, then exp(x - max) and its sum), and its division is applied to
 * the output rows (dv values each) instead of the scores (M each), as flash attention
 * does: the same result up to float rounding. */
#ifndef DHF_ENGINE_ATTENTION_ROWS_H
#define DHF_ENGINE_ATTENTION_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/dnnl_matmul.h" /* dhf_dmm_dtype */

typedef struct {
    int64_t heads, N, M, d, dv;   /* N queries, M keys, head widths d (q, k) and dv (v) */
    dhf_dmm_dtype dtype;
    size_t block_bytes;           /* budget for one block of scores */
} dhf_attn_shape;

/* q [heads, N, d], kt [heads, d, M], v [heads, M, dv], o [heads, N, dv], all
 * contiguous (the queries already scaled). 0, or -1 with dhf_err_set (oneDNN has no
 * kernel, out of memory): the caller then takes its reference path. */
int dhf_attn_rows_forward(const dhf_attn_shape *s, const void *q, const void *kt,
                          const void *v, void *o);

/* softmax over each of the rows of x [rows, M] in place (float32 or bfloat16 x);
 * 0 or -1 (out of memory) */
int dhf_softmax_rows(void *x, int64_t rows, int64_t M, dhf_dmm_dtype dtype);

#endif
