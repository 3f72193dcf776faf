/* image_prep.h — from 8-bit RGB to the VAE's input, as DHF does it: ToTensor
 * (x / 255), then x * 2 - 1, then torch bilinear resize (align_corners false, no
 * antialias) to diffusion_resolution. */
#ifndef DHF_EXTRACT_IMAGE_PREP_H
#define DHF_EXTRACT_IMAGE_PREP_H

#include <stdint.h>

#include "shim/torch_shim.h"

/* rgb: height * width * 3 bytes, row-major -> NEW [1, 3, H, W] float32 CPU. */
int dhf_rgb_to_pixels(const uint8_t *rgb, int width, int height, dhf_tensor *out);
/* NEW [B, C, out_h, out_w]: bilinear, align_corners false, no antialias (the
 * identity when the size already matches). */
int dhf_resize_bilinear(dhf_tensor x, int64_t out_h, int64_t out_w, dhf_tensor *out);
/* Both steps: NEW [1, 3, size, size]. */
int dhf_rgb_to_vae_input(const uint8_t *rgb, int width, int height, int size,
                         dhf_tensor *out);

#endif
