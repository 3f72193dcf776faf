/* image_prep.c — 8-bit RGB -> [-1, 1] NCHW float32 -> bilinear resize. */
#include "extract/image_prep.h"

#include <stdlib.h>

#include "core/error.h"
#include "core/image_resize.h"
#include "extract/nn_layers.h"

int dhf_rgb_to_pixels(const uint8_t *rgb, int width, int height, dhf_tensor *out)
{
    if (!rgb || width <= 0 || height <= 0)
        return dhf_err_set("image: empty image (%dx%d)", width, height);
    size_t plane = (size_t)width * (size_t)height;
    float *buf = malloc(3 * plane * sizeof *buf);
    if (!buf)
        return dhf_err_set("image: out of memory for %dx%d pixels", width, height);
    /* Same float32 operations as ToTensor's div(255) then `* 2 + (-1)`. */
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < 3; ch++) {
            float v = (float)rgb[3 * i + (size_t)ch] / 255.0f;
            v = v * 2.0f;
            buf[(size_t)ch * plane + i] = v + -1.0f;
        }
    int64_t shape[4] = {1, 3, height, width};
    dhf_status st = dhf_from_buffer(buf, DHF_F32, shape, 4, out);
    free(buf);
    return st == DHF_OK ? 0 : dhf_nn_shim_fail("dhf_from_buffer");
}

int dhf_resize_bilinear(dhf_tensor x, int64_t out_h, int64_t out_w, dhf_tensor *out)
{
    if (out_h <= 0 || out_w <= 0)
        return dhf_err_set("resize: target size %lldx%lld must be positive", (long long)out_h,
                           (long long)out_w);
    return dhf_interpolate(x, out_h, out_w, DHF_INTERP_BILINEAR, false, out) == DHF_OK
               ? 0
               : dhf_nn_shim_fail("dhf_interpolate");
}

int dhf_rgb_to_vae_input(const uint8_t *rgb, int width, int height, int size,
                         dhf_image_resize_mode mode, int load_size, dhf_tensor *out)
{
    dhf_tensor px = NULL;
    if (mode == DHF_IMAGE_RESIZE_PIL || mode == DHF_IMAGE_RESIZE_PIL_LOAD) {
        /* Image.resize((s, s), Image.BILINEAR) on the 8-bit image, then ToTensor (and
         * for PIL_LOAD the extractor's interpolate from load_size up to size) */
        const int s = mode == DHF_IMAGE_RESIZE_PIL ? size : load_size;
        const dhf_image src = { width, height, (uint8_t *)rgb };
        dhf_image small = { 0 };
        if (dhf_image_resize_pil(&src, s, s, DHF_RESAMPLE_BILINEAR, &small) != 0)
            return -1;
        int rc = dhf_rgb_to_pixels(small.rgb, s, s, mode == DHF_IMAGE_RESIZE_PIL ? out : &px);
        dhf_image_free(&small);
        if (rc != 0 || mode == DHF_IMAGE_RESIZE_PIL)
            return rc;
        rc = dhf_resize_bilinear(px, size, size, out);
        dhf_free(px);
        return rc;
    }
    if (dhf_rgb_to_pixels(rgb, width, height, &px) != 0)
        return -1;
    int rc = dhf_resize_bilinear(px, size, size, out);
    dhf_free(px);
    return rc;
}
