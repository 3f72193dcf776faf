/* blocked.h — the channel-blocked activation layout of the oneDNN training path
 * (oneDNN's nChw16c, "aBcd16b"): element (n, c, y, x) of an [N, C, H, W] tensor lives
 * at ((n * Cb + c / 16) * H * W + y * W + x) * 16 + c % 16, with Cb = ceil(C / 16)
 * blocks; the padding channels C..16*Cb-1 hold zeros. Packing to and from the
 * row-major NCHW layout of libtorch tensors. */
#ifndef DHF_ENGINE_BLOCKED_H
#define DHF_ENGINE_BLOCKED_H

#include <stddef.h>
#include <stdint.h>

#define DHF_BLK 16

static inline int64_t dhf_blk_cpad(int64_t c) { return (c + DHF_BLK - 1) / DHF_BLK * DHF_BLK; }

/* floats in a blocked [N, C, H, W] tensor (padding included) */
static inline size_t dhf_blk_numel(int64_t n, int64_t c, int64_t h, int64_t w)
{
    return (size_t)n * (size_t)dhf_blk_cpad(c) * (size_t)h * (size_t)w;
}

/* nchw [N, C, H, W] -> blk (dhf_blk_numel floats; padding channels set to 0). */
void dhf_blk_pack(const float *nchw, int64_t n, int64_t c, int64_t h, int64_t w, float *blk);
/* blk -> nchw (padding dropped). */
void dhf_blk_unpack(const float *blk, int64_t n, int64_t c, int64_t h, int64_t w, float *nchw);

#endif
