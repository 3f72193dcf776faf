/* image_resize.c — Pillow's two-pass fixed-point resampling (image_resize.h): the
 * per-axis coefficient tables, their 22-bit fixed point, and the horizontal and
 * vertical passes over interleaved RGB rows. */
#include "core/image_resize.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct {
    double (*fn)(double x);
    double support;
} filter_def;

static double bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double bicubic_filter(double x)
{
    const double a = -0.5;   /* Pillow's choice (Keys' cubic convolution) */
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x)
{
    if (x == 0.0)
        return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x)
{
    /* truncated sinc, -3 <= x < 3 */
    if (-3.0 <= x && x < 3.0)
        return sinc_filter(x) * sinc_filter(x / 3);
    return 0.0;
}

static const filter_def filters[3] = {
    { bilinear_filter, 1.0 }, { bicubic_filter, 2.0 }, { lanczos_filter, 3.0 } };

/* One axis: for output i, taps [bounds[2i], bounds[2i] + bounds[2i+1]) with fixed-point
 * weights k[i * ksize ..]. */
typedef struct {
    int ksize;
    int *bounds;      /* [out, 2]: first tap, tap count */
    int32_t *k;       /* [out, ksize] */
} axis_coeffs;

static void axis_free(axis_coeffs *a)
{
    free(a->bounds);
    free(a->k);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for in -> out over the box
 * [0, in) (float box bounds, as Pillow passes them). */
static int axis_init(axis_coeffs *a, int in, int out, const filter_def *flt)
{
    const float in0 = 0.0f, in1 = (float)in;
    double scale = (double)(in1 - in0) / out, filterscale = scale;
    if (filterscale < 1.0)
        filterscale = 1.0;
    const double support = flt->support * filterscale;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->bounds = malloc(sizeof(int) * 2 * (size_t)out);
    a->k = malloc(sizeof(int32_t) * (size_t)a->ksize * (size_t)out);
    double *kk = malloc(sizeof(double) * (size_t)a->ksize);
    if (!a->bounds || !a->k || !kk) {
        free(kk);
        axis_free(a);
        return dhf_err_set("resize: out of memory for %d x %d coefficients", out, a->ksize);
    }
    for (int xx = 0; xx < out; xx++) {
        const double center = in0 + (xx + 0.5) * scale, ss = 1.0 / filterscale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);   /* Pillow rounds by truncation */
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        int x = 0;
        for (; x < xmax; x++) {
            const double w = flt->fn((x + xmin - center + 0.5) * ss);
            kk[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                kk[x] /= ww;
        for (; x < a->ksize; x++)
            kk[x] = 0;
        int32_t *k = a->k + (size_t)xx * a->ksize;
        for (x = 0; x < a->ksize; x++)
            k[x] = kk[x] < 0 ? (int32_t)(-0.5 + kk[x] * (1 << PRECISION_BITS))
                             : (int32_t)(0.5 + kk[x] * (1 << PRECISION_BITS));
        a->bounds[2 * xx] = xmin;
        a->bounds[2 * xx + 1] = xmax;
    }
    free(kk);
    return 0;
}

/* clamp(v >> 22, 0, 255) with an arithmetic shift, as Pillow's clip8 table */
static inline uint8_t clip8(int64_t v)
{
    const int64_t s = v >> PRECISION_BITS;
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* src rows [y0, y0 + rows) of width w_in -> dst [rows, w_out] (RGB) */
static void pass_horizontal(const uint8_t *src, int w_in, int y0, int rows, int w_out,
                            const axis_coeffs *a, uint8_t *dst)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + (size_t)(y0 + y) * w_in * 3;
        uint8_t *o = dst + (size_t)y * w_out * 3;
        for (int xx = 0; xx < w_out; xx++) {
            const int xmin = a->bounds[2 * xx], n = a->bounds[2 * xx + 1];
            const int32_t *k = a->k + (size_t)xx * a->ksize;
            int64_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                const uint8_t *p = row + (size_t)(x + xmin) * 3;
                s0 += (int64_t)p[0] * k[x];
                s1 += (int64_t)p[1] * k[x];
                s2 += (int64_t)p[2] * k[x];
            }
            o[3 * xx] = clip8(s0);
            o[3 * xx + 1] = clip8(s1);
            o[3 * xx + 2] = clip8(s2);
        }
    }
}

/* src [*, w] with the taps of a shifted by -y0 -> dst [h_out, w] (RGB) */
static void pass_vertical(const uint8_t *src, int w, int y0, int h_out, const axis_coeffs *a,
                          uint8_t *dst)
{
    const size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < h_out; yy++) {
        const int ymin = a->bounds[2 * yy] - y0, n = a->bounds[2 * yy + 1];
        const int32_t *k = a->k + (size_t)yy * a->ksize;
        uint8_t *o = dst + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++)
                s += (int64_t)src[(size_t)(y + ymin) * stride + i] * k[y];
            o[i] = clip8(s);
        }
    }
}

int dhf_image_resize_pil(const dhf_image *src, int width, int height,
                         dhf_resample_filter filter, dhf_image *out)
{
    memset(out, 0, sizeof *out);
    if (width < 1 || height < 1 || src->width < 1 || src->height < 1 || !src->rgb)
        return dhf_err_set("resize: %dx%d -> %dx%d: sizes must be at least 1", src->width,
                           src->height, width, height);
    if ((unsigned)filter > DHF_RESAMPLE_LANCZOS)
        return dhf_err_set("resize: unknown filter %d", (int)filter);
    const filter_def *flt = &filters[filter];
    const int need_h = width != src->width, need_v = height != src->height;
    axis_coeffs ax = { 0 }, ay = { 0 };
    uint8_t *tmp = NULL;
    if (dhf_image_alloc(out, width, height))
        return -1;
    if (!need_h && !need_v) {
        memcpy(out->rgb, src->rgb, (size_t)width * height * 3);
        return 0;
    }
    if (axis_init(&ax, src->width, width, flt) || axis_init(&ay, src->height, height, flt))
        goto fail;
    /* the rows the vertical pass reads */
    const int y_first = ay.bounds[0];
    const int y_last = ay.bounds[2 * height - 2] + ay.bounds[2 * height - 1];
    if (need_h && !need_v) {
        pass_horizontal(src->rgb, src->width, 0, height, width, &ax, out->rgb);
    } else if (need_h) {
        tmp = malloc((size_t)width * (size_t)(y_last - y_first) * 3);
        if (!tmp) {
            dhf_err_set("resize: out of memory for the %dx%d intermediate", width,
                        y_last - y_first);
            goto fail;
        }
        pass_horizontal(src->rgb, src->width, y_first, y_last - y_first, width, &ax, tmp);
        pass_vertical(tmp, width, y_first, height, &ay, out->rgb);
    } else {
        pass_vertical(src->rgb, width, 0, height, &ay, out->rgb);
    }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return 0;
fail:
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    dhf_image_free(out);
    return -1;
}
