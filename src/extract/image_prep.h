/* image_prep.h — from 8-bit RGB to the VAE's input at diffusion_resolution, in one of
 * the two orders of config key image_resize: Pillow BILINEAR on the 8-bit image, then
 * ToTensor (x / 255) and x * 2 - 1 (the paper's process_image; its interpolate is then
 * the identity), or ToTensor and x * 2 - 1, then torch bilinear (align_corners false,
 * no antialias). */
#ifndef DHF_EXTRACT_IMAGE_PREP_H
#define DHF_EXTRACT_IMAGE_PREP_H

#include <stdint.h>

#include "shim/torch_shim.h"

/* config key image_resize, in the order of its choices */
typedef enum {
    DHF_IMAGE_RESIZE_PIL = 0,      /* Pillow BILINEAR to size, then ToTensor */
    DHF_IMAGE_RESIZE_TORCH = 1,    /* ToTensor, then torch bilinear to size */
    DHF_IMAGE_RESIZE_PIL_LOAD = 2  /* Pillow BILINEAR to load_size, ToTensor, torch to size */
} dhf_image_resize_mode;

/* rgb: height * width * 3 bytes, row-major -> NEW [1, 3, H, W] float32 CPU. */
int dhf_rgb_to_pixels(const uint8_t *rgb, int width, int height, dhf_tensor *out);
/* NEW [B, C, out_h, out_w]: bilinear, align_corners false, no antialias (the
 * identity when the size already matches). */
int dhf_resize_bilinear(dhf_tensor x, int64_t out_h, int64_t out_w, dhf_tensor *out);
/* Both steps in `mode`'s order: NEW [1, 3, size, size]. load_size: the square
 * PIL_LOAD resizes to first (ignored by the other modes). */
int dhf_rgb_to_vae_input(const uint8_t *rgb, int width, int height, int size,
                         dhf_image_resize_mode mode, int load_size, dhf_tensor *out);

#endif
