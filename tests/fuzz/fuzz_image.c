/* fuzz_image.c — JPEG and PNG decoding (core/image.h: libjpeg-turbo, libpng) on
 * arbitrary bytes, then a Pillow-exact resize of what decoded. */
#include "fuzz_util.h"

#include "core/image.h"
#include "core/image_resize.h"

/* The decompression-bomb limit lowered to 4 MP: the limit check runs the same, and a
 * mutated header claiming 2^28 pixels no longer costs seconds of decoding per input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("DHF_IMAGE_MAX_PIXELS", "4194304", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("image", data, size);
    dhf_image img;
    memset(&img, 0, sizeof img);
    if (dhf_image_load(path, &img) == 0) {
        dhf_image out;
        /* large inputs take no new paths through the resize, only time */
        if ((size_t)img.width * (size_t)img.height <= (1u << 16) &&
            dhf_image_resize_pil(&img, 17, 13, DHF_RESAMPLE_LANCZOS, &out) == 0)
            dhf_image_free(&out);
        dhf_image_free(&img);
    }
    return 0;
}
