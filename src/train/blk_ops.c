/* blk_ops.c — bilinear rows, their adjoint and lane sums on blocked planes
 * (blk_ops.h). Plain loops over 16 lanes: the compiler vectorises them; the callers
 * parallelise over planes. */
#include "train/blk_ops.h"

#include <stdlib.h>
#include <string.h>

#include "train/blocked.h"

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
    for (int i = 0; i < w * DHF_BLK; i++)
        vt[i] = a0 * r0[i] + a1 * r1[i];
    for (int ox = 0; ox < tx->out; ox++) {
        const float *p0 = vt + (size_t)tx->i0[ox] * DHF_BLK;
        const float *p1 = vt + (size_t)tx->i1[ox] * DHF_BLK;
        const float b0 = tx->l0[ox], b1 = tx->l1[ox];
        float *o = row + (size_t)ox * DHF_BLK;
        for (int k = 0; k < DHF_BLK; k++)
            o[k] = b0 * p0[k] + b1 * p1[k];
    }
    return row;
}

DHF_HOT void dhf_blk_resize_row_adjoint(const float *restrict grow, const dhf_bilin1d *ty,
                                        const dhf_bilin1d *tx, int oy, float *restrict plane,
                                        float *restrict vt)
{
    const int w = tx->in;
    if (ty->identity && tx->identity) {
        float *dst = plane + (size_t)oy * (size_t)w * DHF_BLK;
        for (int i = 0; i < w * DHF_BLK; i++)
            dst[i] += grow[i];
        return;
    }
    memset(vt, 0, sizeof(float) * (size_t)w * DHF_BLK);
    for (int ox = 0; ox < tx->out; ox++) {
        float *p0 = vt + (size_t)tx->i0[ox] * DHF_BLK;
        float *p1 = vt + (size_t)tx->i1[ox] * DHF_BLK;
        const float b0 = tx->l0[ox], b1 = tx->l1[ox];
        const float *g = grow + (size_t)ox * DHF_BLK;
        for (int k = 0; k < DHF_BLK; k++) {
            p0[k] += b0 * g[k];
            p1[k] += b1 * g[k];
        }
    }
    float *r0 = plane + (size_t)ty->i0[oy] * (size_t)w * DHF_BLK;
    float *r1 = plane + (size_t)ty->i1[oy] * (size_t)w * DHF_BLK;
    const float a0 = ty->l0[oy], a1 = ty->l1[oy];
    for (int i = 0; i < w * DHF_BLK; i++)
        r0[i] += a0 * vt[i];
    for (int i = 0; i < w * DHF_BLK; i++)
        r1[i] += a1 * vt[i];
}

DHF_HOT void dhf_blk_sums(const float *restrict v, int64_t n, double *restrict s,
                          double *restrict q)
{
    for (int64_t i0 = 0; i0 < n; i0 += 64) {
        const int64_t i1 = i0 + 64 < n ? i0 + 64 : n;
        float ls[DHF_BLK] = { 0 }, lq[DHF_BLK] = { 0 };
        for (int64_t i = i0; i < i1; i++)
            for (int k = 0; k < DHF_BLK; k++) {
                float x = v[i * DHF_BLK + k];
                ls[k] += x;
                lq[k] += x * x;
            }
        for (int k = 0; k < DHF_BLK; k++) {
            s[k] += ls[k];
            q[k] += lq[k];
        }
    }
}
