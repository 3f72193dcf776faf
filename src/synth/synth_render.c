/* synth_render.c — the procedural rasteriser of `dhf synth` (see synth_render.h):
 * shape tests, paints, the scene<->image view and the supersampled renderer. */
#include "synth/synth_render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "synth/synth_rng.h"

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static dhf_rgbf mix_rgb(dhf_rgbf a, dhf_rgbf b, double t)
{
    dhf_rgbf o = {(float)(a.r + (b.r - a.r) * t), (float)(a.g + (b.g - a.g) * t),
                  (float)(a.b + (b.b - a.b) * t)};
    return o;
}

/* Hash of an integer lattice point to [0, 1). */
static double lattice01(uint32_t seed, int64_t ix, int64_t iy, uint64_t salt)
{
    uint64_t h = dhf_mix64((uint64_t)seed * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ix * 0xd6e8feb86659fd93ULL ^
                           (uint64_t)iy * 0xa0761d6478bd642fULL ^ salt);
    return (double)(h >> 11) * 0x1.0p-53;
}

static double smooth_noise(uint32_t seed, double x, double y)
{
    double fx = floor(x), fy = floor(y);
    int64_t ix = (int64_t)fx, iy = (int64_t)fy;
    double tx = x - fx, ty = y - fy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    double v00 = lattice01(seed, ix, iy, 1), v10 = lattice01(seed, ix + 1, iy, 1);
    double v01 = lattice01(seed, ix, iy + 1, 1), v11 = lattice01(seed, ix + 1, iy + 1, 1);
    double a = v00 + (v10 - v00) * tx, b = v01 + (v11 - v01) * tx;
    return a + (b - a) * ty;
}

dhf_rgbf dhf_paint_eval(const dhf_paint *p, double x, double y)
{
    double rx = x - p->origin_x, ry = y - p->origin_y;
    double s = p->scale > 0 ? p->scale : 1.0;
    switch (p->kind) {
    case DHF_PAINT_GRADIENT:
        return mix_rgb(p->a, p->b, clampd((rx * p->dir_x + ry * p->dir_y) / s, 0, 1));
    case DHF_PAINT_STRIPES: {
        double t = (rx * p->dir_x + ry * p->dir_y) / s;
        return (t - floor(t)) < p->fill ? p->b : p->a;
    }
    case DHF_PAINT_CHECKER: {
        double u = (rx * p->dir_x + ry * p->dir_y) / s, v = (-rx * p->dir_y + ry * p->dir_x) / s;
        int64_t par = (int64_t)floor(u) + (int64_t)floor(v);
        return (par & 1) ? p->b : p->a;
    }
    case DHF_PAINT_SPOTS: {
        double cx = rx / s, cy = ry / s;
        int64_t ix = (int64_t)floor(cx), iy = (int64_t)floor(cy);
        for (int dj = -1; dj <= 1; dj++)
            for (int di = -1; di <= 1; di++) {
                int64_t jx = ix + di, jy = iy + dj;
                if (lattice01(p->seed, jx, jy, 7) > 0.75)
                    continue; /* an empty cell keeps the pattern irregular */
                double sx = (double)jx + 0.2 + 0.6 * lattice01(p->seed, jx, jy, 2);
                double sy = (double)jy + 0.2 + 0.6 * lattice01(p->seed, jx, jy, 3);
                double r = p->fill * (0.6 + 0.8 * lattice01(p->seed, jx, jy, 4));
                if ((cx - sx) * (cx - sx) + (cy - sy) * (cy - sy) < r * r)
                    return p->b;
            }
        return p->a;
    }
    case DHF_PAINT_NOISE: {
        double t = 0.65 * smooth_noise(p->seed, rx / s, ry / s) +
                   0.35 * smooth_noise(p->seed + 17u, 2.3 * rx / s, 2.3 * ry / s);
        return mix_rgb(p->a, p->b, clampd((t - 0.2) / 0.6, 0, 1));
    }
    case DHF_PAINT_SOLID:
    default:
        return p->a;
    }
}

void dhf_shape_set_ellipse(dhf_shape *s, double cx, double cy, double rx, double ry, double angle)
{
    double c = cos(angle), sn = sin(angle);
    double ix = 1.0 / (rx * rx), iy = 1.0 / (ry * ry);
    s->kind = DHF_SHAPE_ELLIPSE;
    s->cx = cx;
    s->cy = cy;
    s->qxx = c * c * ix + sn * sn * iy;
    s->qyy = sn * sn * ix + c * c * iy;
    s->qxy = c * sn * (ix - iy);
}

int dhf_shape_finish(dhf_shape *s)
{
    double len = hypot(s->paint.dir_x, s->paint.dir_y);
    if (len > 0) {
        s->paint.dir_x /= len;
        s->paint.dir_y /= len;
    } else {
        s->paint.dir_x = 1;
        s->paint.dir_y = 0;
    }
    if (!(s->paint.scale > 0))
        s->paint.scale = 1;
    switch (s->kind) {
    case DHF_SHAPE_ELLIPSE: {
        double det = s->qxx * s->qyy - s->qxy * s->qxy;
        if (!(det > 0) || !(s->qxx > 0))
            return dhf_err_set("synth render: ellipse is not positive definite (qxx=%g qxy=%g qyy=%g)",
                               s->qxx, s->qxy, s->qyy);
        double hx = sqrt(s->qyy / det), hy = sqrt(s->qxx / det);
        s->bbox[0] = s->cx - hx;
        s->bbox[1] = s->cy - hy;
        s->bbox[2] = s->cx + hx;
        s->bbox[3] = s->cy + hy;
        return 0;
    }
    case DHF_SHAPE_POLYGON:
        if (s->n < 3 || s->n > DHF_SHAPE_MAX_VERTS)
            return dhf_err_set("synth render: polygon needs 3..%d vertices, got %d", DHF_SHAPE_MAX_VERTS, s->n);
        s->bbox[0] = s->bbox[2] = s->vx[0];
        s->bbox[1] = s->bbox[3] = s->vy[0];
        for (int i = 1; i < s->n; i++) {
            s->bbox[0] = fmin(s->bbox[0], s->vx[i]);
            s->bbox[2] = fmax(s->bbox[2], s->vx[i]);
            s->bbox[1] = fmin(s->bbox[1], s->vy[i]);
            s->bbox[3] = fmax(s->bbox[3], s->vy[i]);
        }
        return 0;
    case DHF_SHAPE_CAPSULE:
        if (!(s->ra >= 0) || !(s->rb >= 0) || s->ra + s->rb <= 0)
            return dhf_err_set("synth render: capsule radii must be >= 0 and not both 0 (ra=%g rb=%g)", s->ra,
                               s->rb);
        s->bbox[0] = fmin(s->ax - s->ra, s->bx - s->rb);
        s->bbox[1] = fmin(s->ay - s->ra, s->by - s->rb);
        s->bbox[2] = fmax(s->ax + s->ra, s->bx + s->rb);
        s->bbox[3] = fmax(s->ay + s->ra, s->by + s->rb);
        return 0;
    }
    return dhf_err_set("synth render: unknown shape kind %d", (int)s->kind);
}

bool dhf_shape_contains(const dhf_shape *s, double x, double y, double *rim, double *nx, double *ny)
{
    if (x < s->bbox[0] || x > s->bbox[2] || y < s->bbox[1] || y > s->bbox[3])
        return false;
    switch (s->kind) {
    case DHF_SHAPE_ELLIPSE: {
        double dx = x - s->cx, dy = y - s->cy;
        double gx = s->qxx * dx + s->qxy * dy, gy = s->qxy * dx + s->qyy * dy;
        double q = dx * gx + dy * gy;
        if (q > 1.0)
            return false;
        if (rim)
            *rim = sqrt(q);
        if (nx && ny) {
            double l = hypot(gx, gy);
            *nx = l > 0 ? gx / l : 0;
            *ny = l > 0 ? gy / l : 0;
        }
        return true;
    }
    case DHF_SHAPE_POLYGON: {
        bool in = false;
        for (int i = 0, j = s->n - 1; i < s->n; j = i++) {
            if ((s->vy[i] > y) != (s->vy[j] > y)) {
                double xc = s->vx[j] + (y - s->vy[j]) * (s->vx[i] - s->vx[j]) / (s->vy[i] - s->vy[j]);
                if (x < xc)
                    in = !in;
            }
        }
        if (in) {
            if (rim)
                *rim = 0;
            if (nx && ny)
                *nx = *ny = 0;
        }
        return in;
    }
    case DHF_SHAPE_CAPSULE: {
        double ex = s->bx - s->ax, ey = s->by - s->ay;
        double l2 = ex * ex + ey * ey;
        double t = l2 > 0 ? clampd(((x - s->ax) * ex + (y - s->ay) * ey) / l2, 0, 1) : 0;
        double px = x - (s->ax + t * ex), py = y - (s->ay + t * ey);
        double r = s->ra + (s->rb - s->ra) * t;
        double d2 = px * px + py * py;
        if (d2 > r * r)
            return false;
        double d = sqrt(d2);
        if (rim)
            *rim = r > 0 ? d / r : 1;
        if (nx && ny) {
            *nx = d > 0 ? px / d : 0;
            *ny = d > 0 ? py / d : 0;
        }
        return true;
    }
    }
    return false;
}

/* Lambert shading of a shape drawn as if it were a rounded body lit from the
 * upper left: the 2-D outline normal is lifted to 3-D by the rim distance. */
static dhf_rgbf shade_rgb(dhf_rgbf c, float shade, double rim, double nx, double ny)
{
    if (shade <= 0)
        return c;
    const double lx = -0.45, ly = 0.55, lz = 0.70; /* |l| = 1 */
    double r = clampd(rim, 0, 1);
    double nz = sqrt(1 - r * r);
    double lam = fmax(0.0, r * nx * lx + r * ny * ly + nz * lz);
    double f = 1.0 + shade * ((0.45 + 0.75 * lam) - 1.0);
    dhf_rgbf o = {(float)clampd(c.r * f, 0, 1), (float)clampd(c.g * f, 0, 1), (float)clampd(c.b * f, 0, 1)};
    return o;
}

int dhf_view_prepare(dhf_view *v)
{
    double det = v->A[0] * v->A[4] - v->A[1] * v->A[3];
    if (!(fabs(det) > 1e-12))
        return dhf_err_set("synth view: affine part is singular (det=%g)", det);
    v->Ainv[0] = v->A[4] / det;
    v->Ainv[1] = -v->A[1] / det;
    v->Ainv[3] = -v->A[3] / det;
    v->Ainv[4] = v->A[0] / det;
    v->Ainv[2] = -(v->Ainv[0] * v->A[2] + v->Ainv[1] * v->A[5]);
    v->Ainv[5] = -(v->Ainv[3] * v->A[2] + v->Ainv[4] * v->A[5]);
    if (!(v->p_scale > 0))
        return dhf_err_set("synth view: perspective scale must be > 0 (got %g)", v->p_scale);
    if (hypot(v->g_x, v->g_y) > 0.3)
        return dhf_err_set("synth view: perspective |g|=%g is not mild (max 0.3)", hypot(v->g_x, v->g_y));
    if (v->n_rbf < 0 || v->n_rbf > DHF_VIEW_MAX_RBF)
        return dhf_err_set("synth view: %d warp centres (max %d)", v->n_rbf, DHF_VIEW_MAX_RBF);
    if (v->n_rbf > 0) {
        if (!(v->rbf_sigma > 0))
            return dhf_err_set("synth view: warp sigma must be > 0 (got %g)", v->rbf_sigma);
        /* max |grad| of one Gaussian bump is |d| / sigma * exp(-1/2) */
        double lip = 0;
        for (int k = 0; k < v->n_rbf; k++)
            lip += hypot(v->rbf_dx[k], v->rbf_dy[k]) / v->rbf_sigma * 0.6065306597126334;
        if (lip >= 0.9)
            return dhf_err_set("synth view: warp is not a contraction (Lipschitz bound %.3f, need < 0.9)", lip);
    }
    return 0;
}

static void warp_displacement(const dhf_view *v, double u, double w, double *dx, double *dy)
{
    double sx = 0, sy = 0, inv = 1.0 / (2 * v->rbf_sigma * v->rbf_sigma);
    for (int k = 0; k < v->n_rbf; k++) {
        double ex = u - v->rbf_x[k], ey = w - v->rbf_y[k];
        double g = exp(-(ex * ex + ey * ey) * inv);
        sx += v->rbf_dx[k] * g;
        sy += v->rbf_dy[k] * g;
    }
    *dx = sx;
    *dy = sy;
}

void dhf_view_image_to_scene(const dhf_view *v, double u, double w, double *x, double *y)
{
    double dx, dy;
    warp_displacement(v, u, w, &dx, &dy);
    double nx = (u + dx - v->pc_x) / v->p_scale, ny = (w + dy - v->pc_y) / v->p_scale;
    double den = 1.0 - (v->g_x * nx + v->g_y * ny);
    if (den < 0.05)
        den = 0.05; /* far outside the canvas; never reached for drawn pixels */
    double px = v->pc_x + v->p_scale * nx / den, py = v->pc_y + v->p_scale * ny / den;
    *x = v->Ainv[0] * px + v->Ainv[1] * py + v->Ainv[2];
    *y = v->Ainv[3] * px + v->Ainv[4] * py + v->Ainv[5];
}

void dhf_view_scene_to_image(const dhf_view *v, double x, double y, double *u, double *w)
{
    double px = v->A[0] * x + v->A[1] * y + v->A[2], py = v->A[3] * x + v->A[4] * y + v->A[5];
    double nx = (px - v->pc_x) / v->p_scale, ny = (py - v->pc_y) / v->p_scale;
    double den = 1.0 + v->g_x * nx + v->g_y * ny;
    if (den < 0.05)
        den = 0.05;
    double rx = v->pc_x + v->p_scale * nx / den, ry = v->pc_y + v->p_scale * ny / den;
    /* Solve y + d(y) = r by y <- r - d(y): d is a contraction (checked in
     * prepare), so this converges geometrically to the unique solution. */
    double cx = rx, cy = ry;
    for (int it = 0; it < 200 && v->n_rbf > 0; it++) {
        double dx, dy;
        warp_displacement(v, cx, cy, &dx, &dy);
        double nxt = rx - dx, nyt = ry - dy;
        double step = fabs(nxt - cx) + fabs(nyt - cy);
        cx = nxt;
        cy = nyt;
        if (step < 1e-11)
            break;
    }
    *u = cx;
    *w = cy;
}

static dhf_rgbf background_eval(const dhf_background *bg, double u, double w)
{
    if (bg->has_horizon && (u - bg->hx) * bg->hnx + (w - bg->hy) * bg->hny > 0)
        return dhf_paint_eval(&bg->lower, u, w);
    return dhf_paint_eval(&bg->upper, u, w);
}

int dhf_scene_top_shape(const dhf_scene *sc, double x, double y)
{
    for (int k = sc->n_object - 1; k >= 0; k--)
        if (dhf_shape_contains(&sc->object[k], x, y, NULL, NULL, NULL))
            return k;
    return -1;
}

/* Image-space box that certainly contains the drawn object: the scene box's
 * outline mapped forward, widened for the warp's bending between samples. */
static void object_image_box(const dhf_scene *sc, double box[4])
{
    double sb[4] = {1e300, 1e300, -1e300, -1e300};
    for (int k = 0; k < sc->n_object; k++) {
        sb[0] = fmin(sb[0], sc->object[k].bbox[0]);
        sb[1] = fmin(sb[1], sc->object[k].bbox[1]);
        sb[2] = fmax(sb[2], sc->object[k].bbox[2]);
        sb[3] = fmax(sb[3], sc->object[k].bbox[3]);
    }
    box[0] = box[1] = 1e300;
    box[2] = box[3] = -1e300;
    if (sc->n_object == 0)
        return;
    const int steps = 24;
    for (int e = 0; e < 4; e++)
        for (int i = 0; i <= steps; i++) {
            double t = (double)i / steps, x, y;
            switch (e) {
            case 0: x = sb[0] + t * (sb[2] - sb[0]); y = sb[1]; break;
            case 1: x = sb[0] + t * (sb[2] - sb[0]); y = sb[3]; break;
            case 2: x = sb[0]; y = sb[1] + t * (sb[3] - sb[1]); break;
            default: x = sb[2]; y = sb[1] + t * (sb[3] - sb[1]); break;
            }
            double u, w;
            dhf_view_scene_to_image(sc->view, x, y, &u, &w);
            box[0] = fmin(box[0], u);
            box[1] = fmin(box[1], w);
            box[2] = fmax(box[2], u);
            box[3] = fmax(box[3], w);
        }
    double margin = 3.0 + 0.05 * fmax(box[2] - box[0], box[3] - box[1]);
    box[0] -= margin;
    box[1] -= margin;
    box[2] += margin;
    box[3] += margin;
}

int dhf_render_scene(const dhf_scene *sc, dhf_image *img, float *object_cov, float *hidden_cov)
{
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return dhf_err_set("synth render: canvas not allocated");
    if (sc->samples < 1 || sc->samples > 8)
        return dhf_err_set("synth render: samples per axis must be 1..8 (got %d)", sc->samples);
    const int W = img->width, H = img->height, n = sc->samples;
    const double inv_n2 = 1.0 / (n * n);
    double obox[4];
    object_image_box(sc, obox);
    for (int j = 0; j < H; j++) {
        for (int i = 0; i < W; i++) {
            double acc_r = 0, acc_g = 0, acc_b = 0;
            int n_obj = 0, n_hidden = 0;
            for (int sy = 0; sy < n; sy++) {
                double w = j + (sy + 0.5) / n - 0.5;
                for (int sx = 0; sx < n; sx++) {
                    double u = i + (sx + 0.5) / n - 0.5;
                    double rim = 0, nx = 0, ny = 0;
                    int occ = -1;
                    for (int k = sc->n_occluders - 1; k >= 0; k--)
                        if (dhf_shape_contains(&sc->occluders[k], u, w, &rim, &nx, &ny)) {
                            occ = k;
                            break;
                        }
                    dhf_rgbf c = {0, 0, 0};
                    if (occ >= 0) {
                        const dhf_paint *p = &sc->occluders[occ].paint;
                        c = shade_rgb(dhf_paint_eval(p, u, w), p->shade, rim, nx, -ny);
                    }
                    int hit = -1;
                    double x = 0, y = 0, orim = 0, onx = 0, ony = 0;
                    if (u >= obox[0] && u <= obox[2] && w >= obox[1] && w <= obox[3]) {
                        dhf_view_image_to_scene(sc->view, u, w, &x, &y);
                        for (int k = sc->n_object - 1; k >= 0; k--)
                            if (dhf_shape_contains(&sc->object[k], x, y, &orim, &onx, &ony)) {
                                hit = k;
                                break;
                            }
                    }
                    if (hit >= 0) {
                        n_obj++;
                        if (occ >= 0)
                            n_hidden++;
                        else {
                            const dhf_paint *p = &sc->object[hit].paint;
                            c = shade_rgb(dhf_paint_eval(p, x, y), p->shade, orim, onx, ony);
                        }
                    } else if (occ < 0) {
                        c = background_eval(sc->bg, u, w);
                    }
                    acc_r += c.r;
                    acc_g += c.g;
                    acc_b += c.b;
                }
            }
            double grain = 0;
            if (sc->bg->grain > 0)
                grain = (lattice01(sc->bg->seed, i, j, 99) - 0.5) * 2.0 * sc->bg->grain;
            uint8_t *px = img->rgb + ((size_t)j * W + i) * 3;
            px[0] = (uint8_t)lround(clampd(acc_r * inv_n2 + grain, 0, 1) * 255.0);
            px[1] = (uint8_t)lround(clampd(acc_g * inv_n2 + grain, 0, 1) * 255.0);
            px[2] = (uint8_t)lround(clampd(acc_b * inv_n2 + grain, 0, 1) * 255.0);
            if (object_cov)
                object_cov[(size_t)j * W + i] = (float)(n_obj * inv_n2);
            if (hidden_cov)
                hidden_cov[(size_t)j * W + i] = (float)(n_hidden * inv_n2);
        }
    }
    return 0;
}
