/* provider_image.c — descriptors from pixels (standardised colour + position),
 * the model-free provider that lets `dhf eval` run end to end. */
#include "eval/provider_image.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_CH 6   /* r, g, b, u, v, 1 */

typedef struct {
    int grid;
    bool patch;
} image_provider;

/* Cell (col, row) of an R-grid covers the canvas interval [col*fw/R, (col+1)*fw/R)
 * (canvas pixel k spans [k, k+1)), the same area semantics as align_corners=False. */
static int cell_of(int canvas_px, int frame, int grid)
{
    int c = (int)floor((canvas_px + 0.5) * grid / frame);
    return c < 0 ? 0 : (c >= grid ? grid - 1 : c);
}

int dhf_image_descriptors(const dhf_image *img, int grid, dhf_resize_policy resize, bool patch,
                          dhf_descriptors *out)
{
    memset(out, 0, sizeof *out);
    if (!img || !img->rgb || img->width < 1 || img->height < 1)
        return dhf_err_set("image provider: empty image");
    if (grid < 1 || grid > 4096)
        return dhf_err_set("image provider: grid must be 1..4096, got %d", grid);
    dhf_frame f;
    if (dhf_frame_init(&f, img->width, img->height, grid, resize) != 0)
        return -1;
    const int W = img->width, H = img->height;
    size_t ncell = (size_t)grid * grid;

    /* Per-image colour statistics. */
    double mean[3] = {0}, var[3] = {0};
    size_t npx = (size_t)W * H;
    for (size_t i = 0; i < npx; i++)
        for (int k = 0; k < 3; k++)
            mean[k] += img->rgb[3 * i + k];
    for (int k = 0; k < 3; k++)
        mean[k] /= (double)npx;
    for (size_t i = 0; i < npx; i++)
        for (int k = 0; k < 3; k++) {
            double d = img->rgb[3 * i + k] - mean[k];
            var[k] += d * d;
        }
    double inv_std[3];
    for (int k = 0; k < 3; k++) {
        double sd = sqrt(var[k] / (double)npx);
        inv_std[k] = 1.0 / (sd < 1.0 ? 1.0 : sd);   /* flat channels stay finite */
    }

    /* Mean colour per cell (area average). */
    double *sum = calloc(ncell * 3, sizeof *sum);
    long *cnt = calloc(ncell, sizeof *cnt);
    float *base = calloc(ncell * BASE_CH, sizeof *base);
    if (!sum || !cnt || !base) {
        free(sum), free(cnt), free(base);
        return dhf_err_set("image provider: out of memory for a %dx%d grid", grid, grid);
    }
    for (int y = 0; y < H; y++) {
        int row = cell_of(y + f.off_y, f.frame_h, grid);
        for (int x = 0; x < W; x++) {
            size_t c = (size_t)row * grid + cell_of(x + f.off_x, f.frame_w, grid);
            const uint8_t *px = img->rgb + 3 * ((size_t)y * W + x);
            sum[3 * c] += px[0], sum[3 * c + 1] += px[1], sum[3 * c + 2] += px[2];
            cnt[c]++;
        }
    }
    for (int row = 0; row < grid; row++)
        for (int col = 0; col < grid; col++) {
            size_t c = (size_t)row * grid + col;
            /* Cell centre in original pixels (pixel centres at integers). */
            double cx = (col + 0.5) * f.frame_w / grid - 0.5 - f.off_x;
            double cy = (row + 0.5) * f.frame_h / grid - 0.5 - f.off_y;
            double rgb[3];
            if (cnt[c] > 0) {
                for (int k = 0; k < 3; k++)
                    rgb[k] = sum[3 * c + k] / (double)cnt[c];
            } else {
                /* Upsampling (grid finer than the canvas): nearest pixel, if on the image. */
                int nx = (int)floor(cx + 0.5), ny = (int)floor(cy + 0.5);
                if (nx < 0 || ny < 0 || nx >= W || ny >= H)
                    continue;   /* padding: zero descriptor */
                const uint8_t *px = img->rgb + 3 * ((size_t)ny * W + nx);
                for (int k = 0; k < 3; k++)
                    rgb[k] = px[k];
            }
            float *b = base + c * BASE_CH;
            for (int k = 0; k < 3; k++)
                b[k] = (float)((rgb[k] - mean[k]) * inv_std[k]);
            b[3] = (float)(2.0 * (cx + 0.5) / W - 1.0);
            b[4] = (float)(2.0 * (cy + 0.5) / H - 1.0);
            b[5] = 1.0f;
        }
    free(sum), free(cnt);

    int C = patch ? 9 * BASE_CH : BASE_CH;
    float *data = malloc((size_t)C * ncell * sizeof *data);
    if (!data) {
        free(base);
        return dhf_err_set("image provider: out of memory for %d x %d x %d descriptors", C, grid, grid);
    }
    for (int row = 0; row < grid; row++)
        for (int col = 0; col < grid; col++) {
            size_t c = (size_t)row * grid + col;
            bool pad = base[c * BASE_CH + 5] == 0.0f;
            if (!patch) {
                for (int k = 0; k < BASE_CH; k++)
                    data[(size_t)k * ncell + c] = base[c * BASE_CH + k];
                continue;
            }
            int ch = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int r2 = row + dy < 0 ? 0 : (row + dy >= grid ? grid - 1 : row + dy);
                    int c2 = col + dx < 0 ? 0 : (col + dx >= grid ? grid - 1 : col + dx);
                    const float *nb = base + ((size_t)r2 * grid + c2) * BASE_CH;
                    for (int k = 0; k < BASE_CH; k++, ch++)
                        data[(size_t)ch * ncell + c] = pad ? 0.0f : nb[k];
                }
        }
    free(base);
    out->data = data;
    out->c = C;
    out->h = out->w = grid;
    return 0;
}

static int image_describe(void *ctx, const dhf_provider_input *in, dhf_descriptors *out)
{
    const image_provider *p = ctx;
    if (!in->image)
        return dhf_err_set("image provider: %s: the image was not decoded", in->key);
    if (in->image->width != in->width || in->image->height != in->height)
        return dhf_err_set("image provider: %s: decoded %dx%d but the annotation says %dx%d", in->key,
                           in->image->width, in->image->height, in->width, in->height);
    if (dhf_image_descriptors(in->image, p->grid, in->resize, p->patch, out) != 0)
        return dhf_err_wrap("%s", in->key);
    return 0;
}

static cJSON *image_protocol(void *ctx)
{
    const image_provider *p = ctx;
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddNumberToObject(o, "grid", p->grid);
        cJSON_AddNumberToObject(o, "channels", p->patch ? 9 * BASE_CH : BASE_CH);
    }
    return o;
}

static void image_destroy(void *ctx)
{
    free(ctx);
}

int dhf_provider_image_open(const dhf_provider_args *args, dhf_provider *out)
{
    memset(out, 0, sizeof *out);
    bool patch = false;
    const char *arg = args ? args->arg : NULL;
    if (arg && strcmp(arg, "patch") == 0)
        patch = true;
    else if (arg && arg[0] && strcmp(arg, "rgb") != 0)
        return dhf_err_set("--provider image:%s: expected image, image:rgb or image:patch", arg);
    if (args && args->checkpoint)
        return dhf_err_set("--provider image takes no --checkpoint");
    image_provider *p = malloc(sizeof *p);
    if (!p)
        return dhf_err_set("image provider: out of memory");
    p->grid = args && args->cfg ? args->cfg->output_resolution : 64;
    p->patch = patch;
    snprintf(out->name, sizeof out->name, "%s", patch ? "image:patch" : "image");
    snprintf(out->description, sizeof out->description,
             "image-based baseline: per cell of a %dx%d grid, %s(standardised RGB, (u, v) position "
             "in [-1, 1], constant 1) (%d channels); no model",
             p->grid, p->grid, patch ? "its 3x3 neighbourhood of " : "", patch ? 9 * BASE_CH : BASE_CH);
    out->needs_image = true;
    out->ctx = p;
    out->describe = image_describe;
    out->protocol = image_protocol;
    out->destroy = image_destroy;
    return 0;
}
