/* image.h — 8-bit RGB images: decode JPEG (libjpeg) and PNG (libpng), encode JPEG
 * and PNG. Pixels are stored as read (no EXIF rotation: annotations are in
 * stored-pixel space). Other modes become RGB as Pillow's convert("RGB") makes them:
 * grey replicated, alpha dropped (no compositing), palettes expanded, CMYK JPEGs as
 * Adobe's inverted inks through Pillow's cmyk2rgb (tests/core/test_image_resize.c
 * checks every byte against Pillow 9.4). */
#ifndef DHF_CORE_IMAGE_H
#define DHF_CORE_IMAGE_H

#include <stdint.h>

typedef struct {
    int width, height;   /* pixels */
    uint8_t *rgb;        /* height * width * 3, row-major, malloc'd */
} dhf_image;

/* Decodes by content (JPEG or PNG magic), not by extension. On failure the
 * message names the path and what went wrong (missing, truncated, not an image). */
int dhf_image_load(const char *path, dhf_image *img);
/* Reads only the dimensions (cheap for JPEG/PNG headers). */
int dhf_image_size(const char *path, int *width, int *height);
int dhf_image_alloc(dhf_image *img, int width, int height);
void dhf_image_free(dhf_image *img);
/* Writes atomically; quality 1..100. */
int dhf_image_save_jpeg(const char *path, const dhf_image *img, int quality);
int dhf_image_save_png(const char *path, const dhf_image *img);

#endif
