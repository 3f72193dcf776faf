/* blocked.c — packing between NCHW and the nChw16c layout (blocked.h). */
#include "train/blocked.h"

#include <string.h>

void dhf_blk_pack(const float *nchw, int64_t n, int64_t c, int64_t h, int64_t w, float *blk)
{
    const int64_t cb = dhf_blk_cpad(c) / DHF_BLK, hw = h * w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t b = 0; b < cb; b++) {
            float *dst = blk + (size_t)(i * cb + b) * (size_t)hw * DHF_BLK;
            const int64_t c0 = b * DHF_BLK;
            const int64_t nc = c - c0 < DHF_BLK ? c - c0 : DHF_BLK;
            if (nc < DHF_BLK)
                memset(dst, 0, sizeof(float) * (size_t)hw * DHF_BLK);
            for (int64_t k = 0; k < nc; k++) {
                const float *src = nchw + (size_t)(i * c + c0 + k) * (size_t)hw;
                for (int64_t p = 0; p < hw; p++)
                    dst[p * DHF_BLK + k] = src[p];
            }
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
