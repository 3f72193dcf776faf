/* blk_ops.h — the row kernels of the oneDNN training path on channel-blocked planes
 * (blocked.h: one plane = one sample's 16-channel block, [H][W][16]): bilinear
 * resizing to R x R (align_corners false, PyTorch's index arithmetic) one output row
 * at a time and its adjoint, and per-channel sums for GroupNorm. Separate rows keep
 * every upsampled map out of memory: a row is made, used and dropped. */
#ifndef DHF_ENGINE_BLK_OPS_H
#define DHF_ENGINE_BLK_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/simd16.h"   /* DHF_HOT */

/* Source taps of a 1-D bilinear resize in -> out: out[d] = l0[d] in[i0[d]] +
 * l1[d] in[i1[d]], exactly as PyTorch computes them in float. */
typedef struct {
    int in, out;
    bool identity;            /* in == out: the taps are (d, 1) */
    int *i0, *i1;
    float *l0, *l1;
} dhf_bilin1d;

int dhf_bilin1d_init(dhf_bilin1d *t, int in, int out);   /* 0 or -1 (out of memory) */
void dhf_bilin1d_free(dhf_bilin1d *t);

/* Row oy of resize(plane): plane [ty->in][tx->in][16] -> row [tx->out][16].
 * vt: scratch of tx->in * 16 floats. For an identity resize returns a pointer into
 * the plane instead of writing row; otherwise returns row. */
const float *dhf_blk_resize_row(const float *plane, const dhf_bilin1d *ty,
                                const dhf_bilin1d *tx, int oy, float *row, float *vt);

/* plane += the adjoint of dhf_blk_resize_row applied to grow [tx->out][16]:
 * the contribution of output row oy to dL/dplane. vt: scratch of tx->in * 16. */
void dhf_blk_resize_row_adjoint(const float *grow, const dhf_bilin1d *ty,
                                const dhf_bilin1d *tx, int oy, float *plane, float *vt);

/* s[k] += sum_i v[i*16+k], q[k] += sum_i v[i*16+k]^2 over n pixels (float partial
 * sums over runs of 64 pixels, added up in double). */
void dhf_blk_sums(const float *v, int64_t n, double *s, double *q);

#endif
