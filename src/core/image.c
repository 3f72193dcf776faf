/* image.c — decoding (JPEG via libjpeg, PNG via libpng, chosen by magic bytes)
 * into 8-bit RGB, header-only size queries, and atomic JPEG/PNG encoding.
 * Both libraries report fatal errors by longjmp; every entry point here catches
 * them so a corrupt or truncated file becomes a dhf error, never a crash. */
#include "core/image.h"
#include "core/error.h"
#include "core/fsutil.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* Guards against absurd headers (random bytes that happen to carry a magic
 * number) before any allocation: 2^28 pixels is ~800 MB of RGB. */
#define DHF_IMAGE_MAX_SIDE 65535
#define DHF_IMAGE_MAX_PIXELS (1u << 28)

enum image_kind { KIND_UNKNOWN, KIND_JPEG, KIND_PNG };

static enum image_kind sniff(const unsigned char *b, size_t n)
{
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return KIND_JPEG;
    if (n >= 8 && memcmp(b, png_magic, 8) == 0)
        return KIND_PNG;
    return KIND_UNKNOWN;
}

/* Opens `path` and identifies it; on success the stream is rewound. */
static int open_image(const char *path, FILE **out, enum image_kind *kind)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dhf_err_set("%s: cannot open image: %s", path, strerror(errno));
    unsigned char head[8];
    size_t n = fread(head, 1, sizeof head, f);
    if (n == 0) {
        fclose(f);
        return dhf_err_set("%s: empty file, not an image", path);
    }
    *kind = sniff(head, n);
    if (*kind == KIND_UNKNOWN) {
        fclose(f);
        return dhf_err_set("%s: not a JPEG or PNG image (unrecognised magic bytes)", path);
    }
    rewind(f);
    *out = f;
    return 0;
}

/* The pixel limit against decompression bombs: DHF_IMAGE_MAX_PIXELS (environment)
 * lowers or raises the default 2^28, as Pillow's Image.MAX_IMAGE_PIXELS does. */
static unsigned long max_pixels(void)
{
    const char *e = getenv("DHF_IMAGE_MAX_PIXELS");
    char *end = NULL;
    unsigned long v = e && *e ? strtoul(e, &end, 10) : 0;
    return e && *e && end && !*end && v > 0 ? v : DHF_IMAGE_MAX_PIXELS;
}

static int check_dims(const char *path, long w, long h)
{
    if (w <= 0 || h <= 0)
        return dhf_err_set("%s: invalid image size %ldx%ld", path, w, h);
    unsigned long limit = max_pixels();
    if (w > DHF_IMAGE_MAX_SIDE || h > DHF_IMAGE_MAX_SIDE ||
        (unsigned long)w * (unsigned long)h > limit)
        return dhf_err_set("%s: image size %ldx%ld exceeds the limit (%d per side, %lu pixels: "
                           "DHF_IMAGE_MAX_PIXELS); a decompression bomb?",
                           path, w, h, DHF_IMAGE_MAX_SIDE, limit);
    return 0;
}

int dhf_image_alloc(dhf_image *img, int width, int height)
{
    img->width = img->height = 0;
    img->rgb = NULL;
    if (check_dims("dhf_image_alloc", width, height) != 0)
        return -1;
    img->rgb = malloc((size_t)width * (size_t)height * 3);
    if (!img->rgb)
        return dhf_err_set("out of memory allocating a %dx%d image", width, height);
    img->width = width;
    img->height = height;
    return 0;
}

void dhf_image_free(dhf_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

/* ---- JPEG ------------------------------------------------------------------ */

/* libjpeg's default error_exit calls exit(); ours jumps back with the text. A
 * truncated file is only a *warning* to libjpeg (it pads with a fake EOI), so
 * that warning is promoted to an error: a half-grey image is not an image. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_err;

static void jpeg_error_exit(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_emit_message(j_common_ptr cinfo, int level)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level < 0 && e->pub.msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        e->pub.format_message(cinfo, e->msg);
        longjmp(e->jump, 1);
    }
    /* Other warnings (extraneous bytes, ...) occur in real datasets and leave
     * a usable image; they are counted by libjpeg but not printed. */
    if (level < 0)
        e->pub.num_warnings++;
}

static void jpeg_err_init(jpeg_err *e)
{
    memset(e, 0, sizeof *e);
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_error_exit;
    e->pub.emit_message = jpeg_emit_message;
}

static int jpeg_fail(const char *path, const jpeg_err *e)
{
    if (e->truncated)
        return dhf_err_set("%s: truncated JPEG (%s)", path, e->msg);
    return dhf_err_set("%s: corrupt JPEG: %s", path, e->msg);
}

/* Pillow's cmyk2rgb for one channel: nk - MULDIV255(ink, nk), clipped to 0..255 */
static uint8_t cmyk_channel_to_rgb(int ink, int nk)
{
    const int t = ink * nk + 128;
    const int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int load_jpeg(const char *path, FILE *f, dhf_image *img, int header_only)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    /* volatile: these change after setjmp and are read after a longjmp. */
    uint8_t *volatile rgb = NULL;
    JSAMPLE *volatile row = NULL;

    jpeg_err_init(&jerr);
    cinfo.err = &jerr.pub;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return jpeg_fail(path, &jerr);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (check_dims(path, (long)cinfo.image_width, (long)cinfo.image_height) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    img->width = (int)cinfo.image_width;
    img->height = (int)cinfo.image_height;
    if (header_only) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }

    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int comps = cinfo.output_components;
    if ((cmyk && comps != 4) || (!cmyk && comps != 3)) {
        jpeg_destroy_decompress(&cinfo);
        return dhf_err_set("%s: unsupported JPEG colour layout (%d components)", path, comps);
    }
    rgb = malloc((size_t)w * (size_t)h * 3);
    row = malloc((size_t)w * (size_t)comps);
    if (!rgb || !row) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return dhf_err_set("%s: out of memory decoding %dx%d JPEG", path, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        uint8_t *dst = rgb + (size_t)y * (size_t)w * 3;
        if (!cmyk) {
            memcpy(dst, row, (size_t)w * 3);
            continue;
        }
        /* As Pillow's convert("RGB"): its JPEG reader takes every CMYK JPEG as Adobe's
         * inverted inks (ink = 255 - stored), then R = nk - nk * C / 255 with
         * nk = 255 - K, in its MULDIV255 rounding. */
        for (int x = 0; x < w; x++) {
            const int nk = row[4 * x + 3];
            for (int ch = 0; ch < 3; ch++)
                dst[3 * x + ch] = cmyk_channel_to_rgb(255 - row[4 * x + ch], nk);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    img->width = w;
    img->height = h;
    img->rgb = rgb;
    return 0;
}

/* ---- PNG ------------------------------------------------------------------- */

typedef struct {
    jmp_buf jump;
    char msg[256];
} png_err;

static void png_error_fn(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "unknown libpng error");
    longjmp(e->jump, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* benign (e.g. unknown chunks, iCCP quirks): ignored */
}

static int load_png(const char *path, FILE *f, dhf_image *img, int header_only)
{
    png_err perr;
    memset(&perr, 0, sizeof perr);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
                                             png_warning_fn);
    if (!png)
        return dhf_err_set("%s: cannot initialise libpng", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dhf_err_set("%s: cannot initialise libpng", path);
    }
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(perr.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rgb);
        free(rows);
        return dhf_err_set("%s: corrupt or truncated PNG: %s", path, perr.msg);
    }
    png_set_user_limits(png, DHF_IMAGE_MAX_SIDE, DHF_IMAGE_MAX_SIDE);
    png_init_io(png, f);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_dims(path, (long)w, (long)h) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    img->width = (int)w;
    img->height = (int)h;
    if (header_only) {
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }

    /* Normalise every PNG flavour to 8-bit RGB: palette and low-bit grey are
     * expanded, 16-bit is reduced, grey is replicated, alpha is dropped
     * (annotations refer to the stored colours, not a composite). */
    int color = png_get_color_type(png, info);
    png_set_expand(png);
    png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8) {
        png_destroy_read_struct(&png, &info, NULL);
        return dhf_err_set("%s: unsupported PNG layout after conversion", path);
    }
    rgb = malloc((size_t)w * (size_t)h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!rgb || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rgb);
        free(rows);
        return dhf_err_set("%s: out of memory decoding %ux%u PNG", path, (unsigned)w,
                           (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = rgb + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    img->rgb = rgb;
    return 0;
}

/* ---- public decode --------------------------------------------------------- */

static int load_any(const char *path, dhf_image *img, int header_only)
{
    FILE *f = NULL;
    enum image_kind kind = KIND_UNKNOWN;
    if (open_image(path, &f, &kind) != 0)
        return -1;
    int rc = kind == KIND_JPEG ? load_jpeg(path, f, img, header_only)
                               : load_png(path, f, img, header_only);
    fclose(f);
    return rc;
}

int dhf_image_load(const char *path, dhf_image *img)
{
    img->width = img->height = 0;
    img->rgb = NULL;
    if (load_any(path, img, 0) != 0) {
        img->width = img->height = 0;
        img->rgb = NULL;
        return -1;
    }
    return 0;
}

int dhf_image_size(const char *path, int *width, int *height)
{
    dhf_image img = {0, 0, NULL};
    if (load_any(path, &img, 1) != 0)
        return -1;
    *width = img.width;
    *height = img.height;
    return 0;
}

/* ---- encode ---------------------------------------------------------------- */

static int check_image_arg(const char *path, const dhf_image *img)
{
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return dhf_err_set("%s: cannot save an empty image", path);
    return check_dims(path, img->width, img->height);
}

int dhf_image_save_jpeg(const char *path, const dhf_image *img, int quality)
{
    if (check_image_arg(path, img) != 0)
        return -1;
    if (quality < 1 || quality > 100)
        return dhf_err_set("%s: JPEG quality %d out of range 1..100", path, quality);
    dhf_atomic_file af;
    if (dhf_atomic_open(&af, path) != 0)
        return -1;

    struct jpeg_compress_struct cinfo;
    jpeg_err jerr;
    jpeg_err_init(&jerr);
    cinfo.err = &jerr.pub;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_compress(&cinfo);
        dhf_atomic_abort(&af);
        return dhf_err_set("%s: JPEG encoding failed: %s", path, jerr.msg);
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, af.fp);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {img->rgb + (size_t)cinfo.next_scanline * (size_t)img->width * 3};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return dhf_atomic_commit(&af);
}

int dhf_image_save_png(const char *path, const dhf_image *img)
{
    if (check_image_arg(path, img) != 0)
        return -1;
    dhf_atomic_file af;
    if (dhf_atomic_open(&af, path) != 0)
        return -1;
    png_err perr;
    memset(&perr, 0, sizeof perr);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
                                              png_warning_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        dhf_atomic_abort(&af);
        return dhf_err_set("%s: cannot initialise libpng", path);
    }
    if (setjmp(perr.jump)) {
        png_destroy_write_struct(&png, &info);
        dhf_atomic_abort(&af);
        return dhf_err_set("%s: PNG encoding failed: %s", path, perr.msg);
    }
    png_init_io(png, af.fp);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, img->rgb + (size_t)y * (size_t)img->width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return dhf_atomic_commit(&af);
}
