/* blocked.c — packing between NCHW and the nChw16c layout (blocked.h). The pack is a
 * 16 x 16 (channels x pixels) register transpose with streaming stores: it moves every
 * input feature of a training step (about 0.6 GB at the SD-1.5 shapes), so it must run
 * at memory speed, not one scattered float at a time. */
#include "engine/blocked.h"

#include <string.h>

#include "engine/simd16.h"

/* One stage of the transpose: rows k and k + h (k & h == 0) exchange their h-wide
 * off-diagonal pieces. After the stages h = 8, 4, 2, 1, row j holds column j. */
#define SHUF_LO(h) SHUF_LO_##h
#define SHUF_HI(h) SHUF_HI_##h
#define SHUF_LO_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define SHUF_HI_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define SHUF_LO_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define SHUF_HI_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define SHUF_LO_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define SHUF_HI_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define SHUF_LO_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define SHUF_HI_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define STAGE(h)                                                                 \
    for (int k = 0; k < DHF_BLK; k++)                                            \
        if (!(k & (h))) {                                                        \
            const v16 a = r[k], b = r[k + (h)];                                  \
            r[k] = __builtin_shufflevector(a, b, SHUF_LO(h));                    \
            r[k + (h)] = __builtin_shufflevector(a, b, SHUF_HI(h));              \
        }

/* dst[p*16 + k] = src[k*hw + p] for p < np (np a multiple of 16), k < nc; lanes
 * nc..15 zero. dst 64-byte aligned. */
DHF_HOT static void pack_plane(const float *restrict src, int64_t hw, int nc, int64_t np,
                               float *restrict dst)
{
    for (int64_t p0 = 0; p0 < np; p0 += DHF_BLK) {
        v16 r[DHF_BLK];
        for (int k = 0; k < DHF_BLK; k++)
            r[k] = k < nc ? V16_LOAD(src + (size_t)k * (size_t)hw + (size_t)p0) : (v16){ 0 };
        STAGE(8)
        STAGE(4)
        STAGE(2)
        STAGE(1)
        for (int j = 0; j < DHF_BLK; j++)
            V16_STREAM(dst + (size_t)(p0 + j) * DHF_BLK, r[j]);
    }
}

void dhf_blk_pack(const float *nchw, int64_t n, int64_t c, int64_t h, int64_t w, float *blk)
{
    const int64_t cb = dhf_blk_cpad(c) / DHF_BLK, hw = h * w;
    const int64_t np = hw / DHF_BLK * DHF_BLK;   /* pixels the transpose takes */
    const int aligned = ((uintptr_t)blk % 64) == 0;
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static)
        for (int64_t i = 0; i < n; i++)
            for (int64_t b = 0; b < cb; b++) {
                float *dst = blk + (size_t)(i * cb + b) * (size_t)hw * DHF_BLK;
                const int64_t c0 = b * DHF_BLK;
                const int nc = (int)(c - c0 < DHF_BLK ? c - c0 : DHF_BLK);
                const float *src = nchw + (size_t)(i * c + c0) * (size_t)hw;
                const int64_t done = aligned ? np : 0;
                if (done)
                    pack_plane(src, hw, nc, np, dst);
                for (int64_t p = done; p < hw; p++)
                    for (int k = 0; k < DHF_BLK; k++)
                        dst[p * DHF_BLK + k] = k < nc ? src[(size_t)k * (size_t)hw + (size_t)p]
                                                      : 0.f;
            }
        V16_STREAM_FENCE();
    }
}

void dhf_blk_unpack(const float *blk, int64_t n, int64_t c, int64_t h, int64_t w, float *nchw)
{
    const int64_t cb = dhf_blk_cpad(c) / DHF_BLK, hw = h * w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            const float *src = blk + (size_t)(i * cb + ch / DHF_BLK) * (size_t)hw * DHF_BLK +
                               ch % DHF_BLK;
            float *dst = nchw + (size_t)(i * c + ch) * (size_t)hw;
            for (int64_t p = 0; p < hw; p++)
                dst[p] = src[p * DHF_BLK];
        }
}
