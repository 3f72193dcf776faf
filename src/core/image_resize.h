/* image_resize.h — Pillow-exact resizing of 8-bit RGB images: what Pillow 9.x's
 * `Image.resize((W, H), filter)` computes (ImagingResample), byte for byte. The paper's
 * code resizes real photos this way (BILINEAR) before converting them to floats; the
 * ViT baselines' extractors use LANCZOS.
 *
 * Per axis: scale = in / out, filterscale = max(scale, 1) (the filter widens when
 * shrinking: antialiasing), support = filter support * filterscale; output i has centre
 * (i + 0.5) * scale and taps x in [max(int(centre - support + 0.5), 0),
 * min(int(centre + support + 0.5), in)), weights filter((x - centre + 0.5) / filterscale)
 * normalised to sum 1 in double (so renormalised over the pixels that exist at the
 * borders), then fixed point with 22 fractional bits rounded half away from zero.
 * A pixel is clamp((2^21 + sum k p) >> 22, 0, 255). The horizontal pass runs first over
 * the source rows the vertical pass reads and is stored as uint8; a pass is skipped
 * when its side keeps its size (the same size on both sides is a copy). */
#ifndef DHF_CORE_IMAGE_RESIZE_H
#define DHF_CORE_IMAGE_RESIZE_H

#include "core/image.h"

/* Pillow's filters (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS). */
typedef enum {
    DHF_RESAMPLE_BILINEAR = 0,   /* triangle, support 1 */
    DHF_RESAMPLE_BICUBIC = 1,    /* cubic convolution a = -0.5, support 2 */
    DHF_RESAMPLE_LANCZOS = 2     /* sinc(t) sinc(t / 3), support 3 */
} dhf_resample_filter;

/* *out (allocated here; dhf_image_free it) = src resized to width x height. Sizes
 * must be >= 1. Returns 0, or -1 with a message. */
int dhf_image_resize_pil(const dhf_image *src, int width, int height,
                         dhf_resample_filter filter, dhf_image *out);

#endif
