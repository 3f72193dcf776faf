/* blk_ops.c — bilinear rows, their adjoint and lane sums on blocked planes
 * (blk_ops.h). Plain loops over 16 lanes: the compiler vectorises them; the callers
 * parallelise over planes. */
#include "engine/blk_ops.h"

#include <stdlib.h>
#include <string.h>

#include "engine/blocked.h"
#include "engine/simd16.h"

int dhf_bilin1d_init(dhf_bilin1d *t, int in, int out)
{
    memset(t, 0, sizeof *t);
    t->in = in;
    t->out = out;
    t->identity = in == out;
    t->i0 = malloc(sizeof(int) * (size_t)out);
    t->i1 = malloc(sizeof(int) * (size_t)out);
    t->l0 = malloc(sizeof(float) * (size_t)out);
    t->l1 = malloc(sizeof(float) * (size_t)out);
    if (!t->i0 || !t->i1 || !t->l0 || !t->l1) {
        dhf_bilin1d_free(t);
        return -1;
    }
    /* PyTorch's upsample_bilinear2d (align_corners false, no scale given):
     * scale = in / out in float, src = max(scale * (d + 0.5) - 0.5, 0) */
    const float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0.f)
            src = 0.f;
        int i0 = (int)src;
        int step = i0 < in - 1 ? 1 : 0;
        float l1 = src - (float)i0;
        t->i0[d] = i0;
        t->i1[d] = i0 + step;
        t->l1[d] = l1;
        t->l0[d] = 1.f - l1;
    }
    return 0;
}

void dhf_bilin1d_free(dhf_bilin1d *t)
{
    if (!t)
        return;
    free(t->i0);
    free(t->i1);
    free(t->l0);
    free(t->l1);
    memset(t, 0, sizeof *t);
}

DHF_HOT const float *dhf_blk_resize_row(const float *restrict plane, const dhf_bilin1d *ty,
                                        const dhf_bilin1d *tx, int oy, float *restrict row,
                                        float *restrict vt)
{
    const int w = tx->in;
    if (ty->identity && tx->identity)
        return plane + (size_t)oy * (size_t)w * DHF_BLK;
    const float *r0 = plane + (size_t)ty->i0[oy] * (size_t)w * DHF_BLK;
    const float *r1 = plane + (size_t)ty->i1[oy] * (size_t)w * DHF_BLK;
    const float a0 = ty->l0[oy], a1 = ty->l1[oy];
    for (int i = 0; i < w; i++)
        V16_STORE(vt + i * DHF_BLK,
                  a0 * V16_LOAD(r0 + i * DHF_BLK) + a1 * V16_LOAD(r1 + i * DHF_BLK));
    for (int ox = 0; ox < tx->out; ox++)
        V16_STORE(row + ox * DHF_BLK, tx->l0[ox] * V16_LOAD(vt + tx->i0[ox] * DHF_BLK) +
                                          tx->l1[ox] * V16_LOAD(vt + tx->i1[ox] * DHF_BLK));
    return row;
}

DHF_HOT void dhf_blk_resize_row_adjoint(const float *restrict grow, const dhf_bilin1d *ty,
                                        const dhf_bilin1d *tx, int oy, float *restrict plane,
                                        float *restrict vt)
{
    const int w = tx->in;
    if (ty->identity && tx->identity) {
        float *dst = plane + (size_t)oy * (size_t)w * DHF_BLK;
        for (int i = 0; i < w; i++)
            V16_STORE(dst + i * DHF_BLK,
                      V16_LOAD(dst + i * DHF_BLK) + V16_LOAD(grow + i * DHF_BLK));
        return;
    }
    memset(vt, 0, sizeof(float) * (size_t)w * DHF_BLK);
    for (int ox = 0; ox < tx->out; ox++) {
        /* i0 == i1 at the border: both updates land on the same pixel, as they must */
        float *p0 = vt + tx->i0[ox] * DHF_BLK;
        v16 g = V16_LOAD(grow + ox * DHF_BLK);
        V16_STORE(p0, V16_LOAD(p0) + tx->l0[ox] * g);
        float *p1 = vt + tx->i1[ox] * DHF_BLK;
        V16_STORE(p1, V16_LOAD(p1) + tx->l1[ox] * g);
    }
    float *r0 = plane + (size_t)ty->i0[oy] * (size_t)w * DHF_BLK;
    const float a0 = ty->l0[oy], a1 = ty->l1[oy];
    for (int i = 0; i < w; i++)
        V16_STORE(r0 + i * DHF_BLK, V16_LOAD(r0 + i * DHF_BLK) + a0 * V16_LOAD(vt + i * DHF_BLK));
    float *r1 = plane + (size_t)ty->i1[oy] * (size_t)w * DHF_BLK;
    for (int i = 0; i < w; i++)
        V16_STORE(r1 + i * DHF_BLK, V16_LOAD(r1 + i * DHF_BLK) + a1 * V16_LOAD(vt + i * DHF_BLK));
}

DHF_HOT void dhf_blk_sums(const float *restrict v, int64_t n, double *restrict s,
                          double *restrict q)
{
    for (int64_t i0 = 0; i0 < n; i0 += 64) {
        const int64_t i1 = i0 + 64 < n ? i0 + 64 : n;
        v16 ls = { 0 }, lq = { 0 };
        for (int64_t i = i0; i < i1; i++) {
            v16 x = V16_LOAD(v + i * DHF_BLK);
            ls += x;
            lq += x * x;
        }
        for (int k = 0; k < DHF_BLK; k++) {
            s[k] += ls[k];
            q[k] += lq[k];
        }
    }
}
