/* match.c — nearest-neighbour keypoint transfer between descriptor maps, the
 * stretch/pad frame geometry and the PyTorch-compatible bilinear resize. */
#include "eval/match.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Channels resized at a time: bounds the scratch memory to CHUNK × L² floats
 * however wide the descriptors are (SD concat features have thousands). */
#define MATCH_CHANNEL_CHUNK 16
#define MATCH_PIXEL_BLOCK 1024

int dhf_resize_policy_parse(const char *s, dhf_resize_policy *out)
{
    if (s && strcmp(s, "stretch") == 0)
        *out = DHF_RESIZE_STRETCH;
    else if (s && strcmp(s, "pad") == 0)
        *out = DHF_RESIZE_PAD;
    else
        return dhf_err_set("eval.resize: expected 'stretch' or 'pad', got '%s'", s ? s : "(null)");
    return 0;
}

int dhf_matcher_parse(const char *s, dhf_matcher_kind *out)
{
    if (s && strcmp(s, "argmax") == 0)
        *out = DHF_MATCH_ARGMAX;
    else if (s && strcmp(s, "soft_argmax") == 0)
        *out = DHF_MATCH_SOFT_ARGMAX;
    else if (s && strcmp(s, "window_soft_argmax") == 0)
        *out = DHF_MATCH_WINDOW_SOFT_ARGMAX;
    else
        return dhf_err_set("eval.matcher: expected 'argmax', 'soft_argmax' or 'window_soft_argmax', got '%s'",
                           s ? s : "(null)");
    return 0;
}

const char *dhf_resize_policy_name(dhf_resize_policy p)
{
    return p == DHF_RESIZE_PAD ? "pad" : "stretch";
}

const char *dhf_matcher_name(dhf_matcher_kind m)
{
    switch (m) {
    case DHF_MATCH_SOFT_ARGMAX: return "soft_argmax";
    case DHF_MATCH_WINDOW_SOFT_ARGMAX: return "window_soft_argmax";
    default: return "argmax";
    }
}

/* ---- frame ------------------------------------------------------------------ */

int dhf_frame_init(dhf_frame *f, int width, int height, int load_size, dhf_resize_policy policy)
{
    memset(f, 0, sizeof *f);
    if (width < 1 || height < 1)
        return dhf_err_set("frame: image size must be positive, got %dx%d", width, height);
    if (load_size < 1)
        return dhf_err_set("frame: load_size must be positive, got %d", load_size);
    f->width = width;
    f->height = height;
    f->load_size = load_size;
    if (policy == DHF_RESIZE_PAD) {
        int m = width > height ? width : height;
        f->frame_w = f->frame_h = m;
        f->off_x = (m - width) / 2;
        f->off_y = (m - height) / 2;
    } else {
        f->frame_w = width;
        f->frame_h = height;
    }
    /* The scale is computed first and then multiplied, as in the paper's
     * rescale_points: x * (L / W), not x * L / W (they differ in the last ulp). */
    f->to_load_x = (double)load_size / (double)f->frame_w;
    f->to_load_y = (double)load_size / (double)f->frame_h;
    f->to_orig_x = (double)f->frame_w / (double)load_size;
    f->to_orig_y = (double)f->frame_h / (double)load_size;
    return 0;
}

void dhf_frame_to_load(const dhf_frame *f, double x, double y, double *lx, double *ly)
{
    *lx = (x + f->off_x) * f->to_load_x;
    *ly = (y + f->off_y) * f->to_load_y;
}

void dhf_frame_to_orig(const dhf_frame *f, double lx, double ly, double *x, double *y)
{
    *x = lx * f->to_orig_x - f->off_x;
    *y = ly * f->to_orig_y - f->off_y;
}

bool dhf_frame_on_image(const dhf_frame *f, int col, int row)
{
    if (f->off_x == 0 && f->off_y == 0 && f->frame_w == f->width && f->frame_h == f->height)
        return true;
    double x, y;
    dhf_frame_to_orig(f, col, row, &x, &y);
    return x >= -0.5 && x < f->width - 0.5 && y >= -0.5 && y < f->height - 0.5;
}

int dhf_load_index(double v, int load_size)
{
    if (!(v > 0.0))          /* also maps NaN to 0 */
        v = 0.0;
    if (v > load_size - 1)
        v = load_size - 1;
    /* nearbyint in the default rounding mode is round-half-to-even, like np.round. */
    return (int)nearbyint(v);
}

/* ---- bilinear resize ---------------------------------------------------------- */

/* PyTorch's compute_source_index_and_lambda for align_corners=False, as libtorch
 * 1.13 computes it (checked bit for bit against interpolate()): the scale is a
 * float quotient, the source index stays in double, the weight is rounded to
 * float once: l1 = (float)(src - i0), l0 = 1 - l1. */
typedef struct {
    int i0, i1;
    float l0, l1;
} lin_tap;

static lin_tap lin_tap_at(int dst, int in, int out)
{
    lin_tap t;
    if (in == out) {
        t.i0 = t.i1 = dst;
        t.l0 = 1.0f;
        t.l1 = 0.0f;
        return t;
    }
    float scale = (float)in / (float)out;
    double src = scale * (dst + 0.5) - 0.5;
    if (src < 0.0)
        src = 0.0;
    t.i0 = (int)src;
    t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
    float l1 = (float)(src - t.i0);
    if (l1 < 0.0f)
        l1 = 0.0f;
    if (l1 > 1.0f)
        l1 = 1.0f;
    t.l1 = l1;
    t.l0 = 1.0f - l1;
    return t;
}

/* libtorch's CPU kernel is compiled with FMA contraction; these fused forms
 * reproduce its float32 results exactly (the plain a*b + c*d differs in the
 * last bit for about a third of the pixels). */
static inline float lin_blend(const float *plane, int w, lin_tap ty, lin_tap tx)
{
    const float *r0 = plane + (size_t)ty.i0 * w, *r1 = plane + (size_t)ty.i1 * w;
    float top = fmaf(tx.l0, r0[tx.i0], r0[tx.i1] * tx.l1);
    float bot = fmaf(tx.l0, r1[tx.i0], r1[tx.i1] * tx.l1);
    return fmaf(ty.l0, top, bot * ty.l1);
}

/* An FMA clone inlines fmaf() to one instruction where the CPU has it (the
 * default clone calls libm's fmaf, same results, ~2x slower). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DHF_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define DHF_FMA_CLONES
#endif

DHF_FMA_CLONES
void dhf_map_resize_bilinear(const float *in, int c, int h, int w, float *out, int oh, int ow)
{
    lin_tap *tx = malloc((size_t)ow * sizeof *tx);
    if (!tx) {   /* tiny allocation; fall back to per-pixel taps */
        for (int ch = 0; ch < c; ch++)
            for (int r = 0; r < oh; r++)
                for (int col = 0; col < ow; col++)
                    out[((size_t)ch * oh + r) * ow + col] =
                        lin_blend(in + (size_t)ch * h * w, w, lin_tap_at(r, h, oh), lin_tap_at(col, w, ow));
        return;
    }
    for (int col = 0; col < ow; col++)
        tx[col] = lin_tap_at(col, w, ow);
    for (int r = 0; r < oh; r++) {
        lin_tap ty = lin_tap_at(r, h, oh);
        for (int ch = 0; ch < c; ch++) {
            const float *plane = in + (size_t)ch * h * w;
            float *orow = out + ((size_t)ch * oh + r) * ow;
            for (int col = 0; col < ow; col++)
                orow[col] = lin_blend(plane, w, ty, tx[col]);
        }
    }
    free(tx);
}

void dhf_map_resize_bilinear_at(const float *in, int c, int h, int w, int oh, int ow,
                            int col, int row, float *out)
{
    lin_tap ty = lin_tap_at(row, h, oh), tx = lin_tap_at(col, w, ow);
    for (int ch = 0; ch < c; ch++)
        out[ch] = lin_blend(in + (size_t)ch * h * w, w, ty, tx);
}

/* ---- matching ------------------------------------------------------------------ */

void dhf_match_opts_default(dhf_match_opts *o)
{
    memset(o, 0, sizeof *o);
    o->load_size = 224;
    o->resize = DHF_RESIZE_STRETCH;
    o->matcher = DHF_MATCH_ARGMAX;
    o->temperature = 0.04;
    o->window_radius = 3;
    o->mutual = false;
    o->mutual_radius = 1;
}

static int check_map(const dhf_desc_map *m, const char *which)
{
    if (!m || !m->data)
        return dhf_err_set("match: %s descriptor map is missing", which);
    if (m->c < 1 || m->h < 1 || m->w < 1)
        return dhf_err_set("match: %s descriptor map has shape %dx%dx%d, expected C,h,w >= 1", which,
                           m->c, m->h, m->w);
    if (m->width < 1 || m->height < 1)
        return dhf_err_set("match: %s image size %dx%d, expected positive", which, m->width, m->height);
    return 0;
}

/* Cosine similarity of `n_q` query vectors (q: n_q × C, unit-normalised or zero)
 * against every pixel of `map` resized to L × L. sims: n_q × L², pixels that are
 * not candidates (zero norm or padding) get -INFINITY. */
static int similarity_maps(const dhf_desc_map *map, const dhf_frame *frame, int L,
                           const double *q, int n_q, double *sims)
{
    size_t np = (size_t)L * L;
    int C = map->c;
    int chunk = C < MATCH_CHANNEL_CHUNK ? C : MATCH_CHANNEL_CHUNK;
    float *buf = malloc((size_t)chunk * np * sizeof *buf);
    double *norm2 = calloc(np, sizeof *norm2);
    if (!buf || !norm2) {
        free(buf);
        free(norm2);
        return dhf_err_set("match: out of memory for a %dx%d similarity map", L, L);
    }
    memset(sims, 0, (size_t)n_q * np * sizeof *sims);
    for (int c0 = 0; c0 < C; c0 += chunk) {
        int nc = C - c0 < chunk ? C - c0 : chunk;
        dhf_map_resize_bilinear(map->data + (size_t)c0 * map->h * map->w, nc, map->h, map->w, buf, L, L);
        /* Pixel blocks keep the n_q similarity rows of a block in cache while
         * the chunk's channels are added in (channel order is preserved, so
         * the sums do not depend on the blocking). */
        for (size_t p0 = 0; p0 < np; p0 += MATCH_PIXEL_BLOCK) {
            size_t p1 = p0 + MATCH_PIXEL_BLOCK < np ? p0 + MATCH_PIXEL_BLOCK : np;
            for (int c = 0; c < nc; c++) {
                const float *plane = buf + (size_t)c * np;
                for (size_t p = p0; p < p1; p++)
                    norm2[p] += (double)plane[p] * plane[p];
                for (int k = 0; k < n_q; k++) {
                    double qc = q[(size_t)k * C + c0 + c];
                    if (qc == 0.0)
                        continue;
                    double *s = sims + (size_t)k * np;
                    for (size_t p = p0; p < p1; p++)
                        s[p] += qc * plane[p];
                }
            }
        }
    }
    for (size_t p = 0; p < np; p++) {
        bool cand = norm2[p] > 0.0 && dhf_frame_on_image(frame, (int)(p % L), (int)(p / L));
        double inv = cand ? 1.0 / sqrt(norm2[p]) : 0.0;
        for (int k = 0; k < n_q; k++)
            sims[(size_t)k * np + p] = cand ? sims[(size_t)k * np + p] * inv : -INFINITY;
    }
    free(buf);
    free(norm2);
    return 0;
}

/* Descriptor at load pixel (col, row) of `map`, as a unit vector (zero stays zero). */
static void unit_descriptor_at(const dhf_desc_map *map, int L, int col, int row, float *tmp, double *q)
{
    dhf_map_resize_bilinear_at(map->data, map->c, map->h, map->w, L, L, col, row, tmp);
    double n2 = 0;
    for (int c = 0; c < map->c; c++)
        n2 += (double)tmp[c] * tmp[c];
    double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0.0;
    for (int c = 0; c < map->c; c++)
        q[c] = tmp[c] * inv;
}

/* First maximum in row-major order; -1 if no pixel is a candidate. */
static long argmax_first(const double *s, size_t np)
{
    long best = -1;
    for (size_t p = 0; p < np; p++)
        if (s[p] != -INFINITY && (best < 0 || s[p] > s[best]))
            best = (long)p;
    return best;
}

static long first_candidate(const dhf_frame *frame, int L)
{
    for (long p = 0; p < (long)L * L; p++)
        if (dhf_frame_on_image(frame, (int)(p % L), (int)(p / L)))
            return p;
    return 0;
}

/* softmax(s / T)-weighted mean position over the candidates in [c0,c1]×[r0,r1]. */
static bool soft_position(const double *s, int L, int c0, int c1, int r0, int r1, double T,
                          double *x, double *y)
{
    double m = -INFINITY;
    for (int r = r0; r <= r1; r++)
        for (int c = c0; c <= c1; c++)
            if (s[(size_t)r * L + c] > m)
                m = s[(size_t)r * L + c];
    if (m == -INFINITY)
        return false;
    double sw = 0, sx = 0, sy = 0;
    for (int r = r0; r <= r1; r++)
        for (int c = c0; c <= c1; c++) {
            double v = s[(size_t)r * L + c];
            if (v == -INFINITY)
                continue;
            double wgt = exp((v - m) / T);
            sw += wgt;
            sx += wgt * c;
            sy += wgt * r;
        }
    *x = sx / sw;
    *y = sy / sw;
    return true;
}

int dhf_match_points(const dhf_match_opts *o, const dhf_desc_map *src, const dhf_desc_map *trg,
                     const double *src_xy, int n, dhf_match_result *out)
{
    if (check_map(src, "source") || check_map(trg, "target"))
        return -1;
    if (src->c != trg->c)
        return dhf_err_set("match: source has %d channels, target %d", src->c, trg->c);
    if (o->load_size < 1 || o->load_size > 4096)
        return dhf_err_set("match: load_size must be 1..4096, got %d", o->load_size);
    if (o->matcher != DHF_MATCH_ARGMAX && !(o->temperature > 0))
        return dhf_err_set("match: soft-argmax temperature must be > 0, got %g", o->temperature);
    if (o->window_radius < 0 || o->mutual_radius < 0)
        return dhf_err_set("match: window and mutual radii must be >= 0");
    if (n <= 0)
        return 0;

    int L = o->load_size, C = src->c;
    size_t np = (size_t)L * L;
    dhf_frame fs, ft;
    if (dhf_frame_init(&fs, src->width, src->height, L, o->resize) ||
        dhf_frame_init(&ft, trg->width, trg->height, L, o->resize))
        return -1;

    double *q = malloc((size_t)n * C * sizeof *q);
    float *tmp = malloc((size_t)C * sizeof *tmp);
    double *sims = malloc((size_t)n * np * sizeof *sims);
    if (!q || !tmp || !sims) {
        free(q), free(tmp), free(sims);
        return dhf_err_set("match: out of memory for %d keypoints at load size %d", n, L);
    }
    for (int k = 0; k < n; k++) {
        double lx, ly;
        dhf_frame_to_load(&fs, src_xy[2 * k], src_xy[2 * k + 1], &lx, &ly);
        out[k].src_col = dhf_load_index(lx, L);
        out[k].src_row = dhf_load_index(ly, L);
        unit_descriptor_at(src, L, out[k].src_col, out[k].src_row, tmp, q + (size_t)k * C);
    }
    if (similarity_maps(trg, &ft, L, q, n, sims) != 0) {
        free(q), free(tmp), free(sims);
        return -1;
    }

    long fallback = first_candidate(&ft, L);
    for (int k = 0; k < n; k++) {
        const double *s = sims + (size_t)k * np;
        long best = argmax_first(s, np);
        if (best < 0)
            best = fallback;
        int bc = (int)(best % L), br = (int)(best / L);
        double px = bc, py = br;
        if (o->matcher == DHF_MATCH_SOFT_ARGMAX) {
            soft_position(s, L, 0, L - 1, 0, L - 1, o->temperature, &px, &py);
        } else if (o->matcher == DHF_MATCH_WINDOW_SOFT_ARGMAX) {
            int r = o->window_radius;
            soft_position(s, L, bc - r < 0 ? 0 : bc - r, bc + r > L - 1 ? L - 1 : bc + r,
                          br - r < 0 ? 0 : br - r, br + r > L - 1 ? L - 1 : br + r, o->temperature, &px, &py);
        }
        out[k].load_x = px;
        out[k].load_y = py;
        out[k].score = s[best] == -INFINITY ? 0.0 : s[best];
        out[k].mutual = -1;
        dhf_frame_to_orig(&ft, px, py, &out[k].x, &out[k].y);
        /* Reuse q for the reverse queries: target descriptor at the hard argmax. */
        if (o->mutual)
            unit_descriptor_at(trg, L, bc, br, tmp, q + (size_t)k * C);
    }

    if (o->mutual) {
        if (similarity_maps(src, &fs, L, q, n, sims) != 0) {
            free(q), free(tmp), free(sims);
            return -1;
        }
        for (int k = 0; k < n; k++) {
            long back = argmax_first(sims + (size_t)k * np, np);
            if (back < 0) {
                out[k].mutual = 0;
                continue;
            }
            int dc = abs((int)(back % L) - out[k].src_col), dr = abs((int)(back / L) - out[k].src_row);
            out[k].mutual = (dc > dr ? dc : dr) <= o->mutual_radius;
        }
    }
    free(q), free(tmp), free(sims);
    return 0;
}
