/* synth_scene.c — one synthetic picture and its annotation (see synth_scene.h). */
#include "synth/synth_scene.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "synth/synth_render.h"
#include "synth/synth_rng.h"

#define DEG (M_PI / 180.0)

void dhf_synth_scene_defaults(dhf_synth_scene_opts *o)
{
    o->min_size = 160;
    o->max_size = 320;
    o->p_truncate = 0.2;
    o->p_occlude = 0.3;
    o->samples = 3;
}

static dhf_rgbf rgbf(double r, double g, double b)
{
    dhf_rgbf c = {(float)r, (float)g, (float)b};
    return c;
}

static dhf_rgbf random_colour(dhf_rng *r, double smin, double smax, double vmin, double vmax)
{
    double h = dhf_rng_unit(r) * 6, s = dhf_rng_range(r, smin, smax), v = dhf_rng_range(r, vmin, vmax);
    double i = floor(h), f = h - i, p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    switch ((int)i % 6) {
    case 0: return rgbf(v, t, p);
    case 1: return rgbf(q, v, p);
    case 2: return rgbf(p, v, t);
    case 3: return rgbf(p, q, v);
    case 4: return rgbf(t, p, v);
    default: return rgbf(v, p, q);
    }
}

/* A paint for backgrounds and occluders, in image pixels. */
static dhf_paint random_paint(dhf_rng *r, double unit, double vmin, double vmax)
{
    dhf_paint p;
    memset(&p, 0, sizeof p);
    p.a = random_colour(r, 0.05, 0.7, vmin, vmax);
    p.b = random_colour(r, 0.05, 0.7, vmin, vmax);
    double ang = dhf_rng_range(r, 0, M_PI);
    p.dir_x = cos(ang);
    p.dir_y = sin(ang);
    p.origin_x = dhf_rng_range(r, 0, 50);
    p.origin_y = dhf_rng_range(r, 0, 50);
    p.seed = (uint32_t)dhf_rng_u64(r);
    switch (dhf_rng_below(r, 6)) {
    case 0:
        p.kind = DHF_PAINT_SOLID;
        break;
    case 1:
        p.kind = DHF_PAINT_GRADIENT;
        p.origin_x = p.origin_y = 0;
        p.scale = unit * dhf_rng_range(r, 4, 10);
        break;
    case 2:
        p.kind = DHF_PAINT_STRIPES;
        p.scale = unit * dhf_rng_range(r, 0.4, 1.5);
        p.fill = dhf_rng_range(r, 0.2, 0.6);
        break;
    case 3:
        p.kind = DHF_PAINT_CHECKER;
        p.scale = unit * dhf_rng_range(r, 0.5, 1.5);
        break;
    case 4:
        p.kind = DHF_PAINT_SPOTS;
        p.scale = unit * dhf_rng_range(r, 0.5, 1.5);
        p.fill = dhf_rng_range(r, 0.15, 0.35);
        break;
    default:
        p.kind = DHF_PAINT_NOISE;
        p.scale = unit * dhf_rng_range(r, 0.8, 3);
        break;
    }
    /* keep background patterns low-contrast so the object stays the subject */
    if (p.kind != DHF_PAINT_SOLID && p.kind != DHF_PAINT_GRADIENT) {
        float t = (float)dhf_rng_range(r, 0.45, 0.8);
        p.b.r = p.a.r + (p.b.r - p.a.r) * (1 - t);
        p.b.g = p.a.g + (p.b.g - p.a.g) * (1 - t);
        p.b.b = p.a.b + (p.b.b - p.a.b) * (1 - t);
    }
    return p;
}

static const char *pose_label(const dhf_synth_model *m, double az)
{
    if (m->symmetric)
        return "Unspecified";
    if (fabs(az) <= 45)
        return "Frontal";
    if (az > 45 && az < 135)
        return "Right";
    if (az < -45 && az > -135)
        return "Left";
    return "Rear";
}

static int render_once(const char *category, int style, uint64_t seed, const dhf_synth_scene_opts *o,
                       dhf_image *img, dhf_synth_instance *inst, bool *usable)
{
    dhf_rng rng;
    dhf_rng_seed(&rng, seed);
    dhf_rng *r = &rng;
    *usable = false;
    memset(inst, 0, sizeof *inst);

    /* canvas: independent sides, kept visibly non-square when the range allows */
    int W = o->min_size + dhf_rng_below(r, o->max_size - o->min_size + 1);
    int H = o->min_size + dhf_rng_below(r, o->max_size - o->min_size + 1);
    int min_gap = (o->max_size - o->min_size) >= 16 ? 8 : (o->max_size > o->min_size ? 1 : 0);
    for (int t = 0; t < 32 && abs(W - H) < min_gap; t++)
        H = o->min_size + dhf_rng_below(r, o->max_size - o->min_size + 1);
    if (abs(W - H) < min_gap) {
        W = o->max_size;
        H = o->min_size;
    }

    dhf_synth_model *model = malloc(sizeof *model);
    dhf_shape *shapes = malloc(sizeof(dhf_shape) * DHF_SYNTH_MAX_SOLIDS);
    float *obj_cov = malloc(sizeof(float) * (size_t)W * H);
    float *hid_cov = malloc(sizeof(float) * (size_t)W * H);
    int rc = -1;
    if (!model || !shapes || !obj_cov || !hid_cov) {
        dhf_err_set("synth: out of memory for a %dx%d picture", W, H);
        goto done;
    }
    if (dhf_synth_build_model(category, style, r, model) != 0)
        goto done;
    dhf_synth_pose pose;
    dhf_synth_sample_pose(model, r, &pose);
    int n_shapes = 0;
    dhf_synth_proj_kp pk[DHF_SYNTH_MAX_KPS];
    if (dhf_synth_project(model, &pose, shapes, &n_shapes, pk) != 0)
        goto done;

    double sb[4] = {1e300, 1e300, -1e300, -1e300};
    for (int k = 0; k < n_shapes; k++) {
        sb[0] = fmin(sb[0], shapes[k].bbox[0]);
        sb[1] = fmin(sb[1], shapes[k].bbox[1]);
        sb[2] = fmax(sb[2], shapes[k].bbox[2]);
        sb[3] = fmax(sb[3], shapes[k].bbox[3]);
    }
    double scx = 0.5 * (sb[0] + sb[2]), scy = 0.5 * (sb[1] + sb[3]);
    double extent = fmax(sb[2] - sb[0], sb[3] - sb[1]);

    /* placement: scale, aspect, in-plane rotation, translation */
    int side_min = W < H ? W : H;
    double frac = dhf_rng_range(r, 0.45, 0.9);
    double s = frac * side_min / extent;
    double aspect = dhf_rng_range(r, 0.92, 1.08);
    double roll = dhf_rng_range(r, -15, 15) * DEG;
    double sx = s * aspect, sy = s / aspect, c = cos(roll), sn = sin(roll);
    double M[4] = {c * sx, sn * sy, sn * sx, -c * sy}; /* scene y up -> image y down */
    double hx = 0, hy = 0;
    for (int k = 0; k < 4; k++) {
        double px = ((k & 1) ? sb[2] : sb[0]) - scx, py = ((k & 2) ? sb[3] : sb[1]) - scy;
        hx = fmax(hx, fabs(M[0] * px + M[1] * py));
        hy = fmax(hy, fabs(M[2] * px + M[3] * py));
    }
    double tx, ty;
    double margin = 2;
    tx = (W - 1) * 0.5;
    ty = (H - 1) * 0.5;
    if (W - 1 - 2 * (hx + margin) > 0)
        tx = dhf_rng_range(r, hx + margin, W - 1 - hx - margin);
    if (H - 1 - 2 * (hy + margin) > 0)
        ty = dhf_rng_range(r, hy + margin, H - 1 - hy - margin);
    if (dhf_rng_chance(r, o->p_truncate)) {
        double f = dhf_rng_range(r, 0.12, 0.35);
        switch (dhf_rng_below(r, 4)) {
        case 0: tx = hx - f * 2 * hx; break;
        case 1: tx = W - 1 - hx + f * 2 * hx; break;
        case 2: ty = hy - f * 2 * hy; break;
        default: ty = H - 1 - hy + f * 2 * hy; break;
        }
    }
    dhf_view view;
    memset(&view, 0, sizeof view);
    view.A[0] = M[0];
    view.A[1] = M[1];
    view.A[2] = tx - M[0] * scx - M[1] * scy;
    view.A[3] = M[2];
    view.A[4] = M[3];
    view.A[5] = ty - M[2] * scx - M[3] * scy;
    double ga = dhf_rng_range(r, 0, 2 * M_PI), gm = dhf_rng_range(r, 0, 0.12);
    view.pc_x = (W - 1) * 0.5;
    view.pc_y = (H - 1) * 0.5;
    view.p_scale = 0.5 * (W > H ? W : H);
    view.g_x = gm * cos(ga);
    view.g_y = gm * sin(ga);
    view.n_rbf = 4;
    view.rbf_sigma = dhf_rng_range(r, 0.18, 0.3) * side_min;
    for (int k = 0; k < view.n_rbf; k++) {
        double a = dhf_rng_range(r, 0, 2 * M_PI), m = dhf_rng_range(r, 0, 0.025) * side_min;
        view.rbf_x[k] = dhf_rng_range(r, 0, W);
        view.rbf_y[k] = dhf_rng_range(r, 0, H);
        view.rbf_dx[k] = m * cos(a);
        view.rbf_dy[k] = m * sin(a);
    }
    if (dhf_view_prepare(&view) != 0)
        goto done;

    /* keypoints forward */
    for (int k = 0; k < model->n_kps; k++)
        dhf_view_scene_to_image(&view, pk[k].x, pk[k].y, &inst->kp[k][0], &inst->kp[k][1]);

    /* background */
    dhf_background bg;
    memset(&bg, 0, sizeof bg);
    double unit = side_min / 10.0;
    bg.upper = random_paint(r, unit, 0.25, 0.95);
    bg.has_horizon = dhf_rng_chance(r, 0.5);
    if (bg.has_horizon) {
        bg.lower = random_paint(r, unit, 0.2, 0.8);
        double a = M_PI / 2 + dhf_rng_range(r, -0.3, 0.3);
        bg.hnx = cos(a);
        bg.hny = sin(a);
        bg.hx = dhf_rng_range(r, 0, W);
        bg.hy = dhf_rng_range(r, 0.3, 0.8) * H;
    }
    bg.grain = (float)dhf_rng_range(r, 0, 0.03);
    bg.seed = (uint32_t)dhf_rng_u64(r);

    /* occluders over part of the object, centred near a keypoint */
    dhf_shape occ[2];
    int n_occ = 0;
    double obj_px = extent * s;
    if (dhf_rng_chance(r, o->p_occlude)) {
        int want = 1 + dhf_rng_below(r, 2);
        for (int i = 0; i < want; i++) {
            dhf_shape *sh = &occ[n_occ];
            memset(sh, 0, sizeof *sh);
            int k = dhf_rng_below(r, model->n_kps);
            double cx = inst->kp[k][0] + dhf_rng_range(r, -0.08, 0.08) * obj_px;
            double cy = inst->kp[k][1] + dhf_rng_range(r, -0.08, 0.08) * obj_px;
            sh->paint = random_paint(r, unit, 0.15, 0.9);
            sh->paint.shade = (float)dhf_rng_range(r, 0, 0.5);
            sh->group = -1;
            int kind = dhf_rng_below(r, 3);
            if (kind == 0) { /* a post or board */
                double w = dhf_rng_range(r, 0.08, 0.2) * obj_px, len = dhf_rng_range(r, 0.6, 2.0) * obj_px;
                double a = dhf_rng_range(r, -0.5, 0.5) + (dhf_rng_chance(r, 0.5) ? M_PI / 2 : 0);
                double ux = cos(a), uy = sin(a), vx = -uy, vy = ux;
                sh->kind = DHF_SHAPE_POLYGON;
                sh->n = 4;
                for (int v = 0; v < 4; v++) {
                    double l = (v == 0 || v == 3) ? -len / 2 : len / 2, ww = (v < 2) ? -w / 2 : w / 2;
                    sh->vx[v] = cx + ux * l + vx * ww;
                    sh->vy[v] = cy + uy * l + vy * ww;
                }
            } else if (kind == 1) { /* a blob */
                dhf_shape_set_ellipse(sh, cx, cy, dhf_rng_range(r, 0.1, 0.22) * obj_px,
                                      dhf_rng_range(r, 0.08, 0.2) * obj_px, dhf_rng_range(r, 0, M_PI));
            } else { /* a branch */
                double a = dhf_rng_range(r, 0, M_PI), len = dhf_rng_range(r, 0.4, 1.0) * obj_px;
                sh->kind = DHF_SHAPE_CAPSULE;
                sh->ax = cx - cos(a) * len / 2;
                sh->ay = cy - sin(a) * len / 2;
                sh->bx = cx + cos(a) * len / 2;
                sh->by = cy + sin(a) * len / 2;
                sh->ra = dhf_rng_range(r, 0.04, 0.09) * obj_px;
                sh->rb = sh->ra * dhf_rng_range(r, 0.5, 1.0);
            }
            if (dhf_shape_finish(sh) != 0)
                goto done;
            n_occ++;
        }
    }

    if (dhf_image_alloc(img, W, H) != 0)
        goto done;
    dhf_scene scene = {&bg, shapes, n_shapes, &view, occ, n_occ, o->samples};
    if (dhf_render_scene(&scene, img, obj_cov, hid_cov) != 0)
        goto done;

    /* silhouette box, truncation, occlusion */
    int x1 = W, y1 = H, x2 = -1, y2 = -1;
    double area = 0, hidden = 0;
    bool touches_border = false;
    for (int j = 0; j < H; j++)
        for (int i = 0; i < W; i++) {
            float cv = obj_cov[(size_t)j * W + i];
            area += cv;
            hidden += hid_cov[(size_t)j * W + i];
            if (cv > 0 && (i == 0 || j == 0 || i == W - 1 || j == H - 1))
                touches_border = true;
            if (cv >= 0.5f) {
                if (i < x1) x1 = i;
                if (i > x2) x2 = i;
                if (j < y1) y1 = j;
                if (j > y2) y2 = j;
            }
        }
    inst->width = W;
    inst->height = H;
    inst->n_kps = model->n_kps;
    rc = 0;
    if (x2 < x1 + 2 || y2 < y1 + 2)
        goto done; /* object (almost) off the canvas: not usable */
    inst->bbox[0] = x1;
    inst->bbox[1] = y1;
    inst->bbox[2] = x2;
    inst->bbox[3] = y2;
    inst->object_pixels = area;

    int n_visible = 0, n_outside = 0, n_occ_kp = 0;
    for (int k = 0; k < model->n_kps; k++) {
        double u = inst->kp[k][0], w = inst->kp[k][1];
        long iu = lround(u), iw = lround(w);
        int state = DHF_KP_VISIBLE;
        if (iu < 0 || iw < 0 || iu > W - 1 || iw > H - 1) {
            state = DHF_KP_OUTSIDE;
        } else if (pk[k].faces_away) {
            state = DHF_KP_SELF;
        } else {
            int owner = -1, last_of_group = -1;
            for (int i = 0; i < n_shapes; i++)
                if (shapes[i].group == pk[k].group) {
                    last_of_group = i;
                    if (dhf_shape_contains(&shapes[i], pk[k].x, pk[k].y, NULL, NULL, NULL))
                        owner = i;
                }
            if (owner < 0)
                owner = last_of_group;
            for (int i = owner + 1; i < n_shapes; i++)
                if (shapes[i].group != pk[k].group &&
                    dhf_shape_contains(&shapes[i], pk[k].x, pk[k].y, NULL, NULL, NULL)) {
                    state = DHF_KP_SELF;
                    break;
                }
            if (state == DHF_KP_VISIBLE)
                for (int i = 0; i < n_occ; i++)
                    if (dhf_shape_contains(&occ[i], u, w, NULL, NULL, NULL)) {
                        state = DHF_KP_OCCLUDER;
                        break;
                    }
        }
        inst->kp_state[k] = state;
        n_visible += state == DHF_KP_VISIBLE;
        n_outside += state == DHF_KP_OUTSIDE;
        n_occ_kp += state == DHF_KP_OCCLUDER;
    }
    inst->truncated = touches_border || n_outside > 0;
    inst->occluded = n_occ_kp > 0 || (area > 0 && hidden / area > 0.02);
    inst->azimuth_deg = dhf_synth_azimuth_deg(model, &pose);
    double a360 = fmod(inst->azimuth_deg + 22.5 + 720.0, 360.0);
    inst->azimuth_id = model->symmetric ? 0 : ((int)floor(a360 / 45.0)) % 8;
    inst->pose = pose_label(model, inst->azimuth_deg);
    inst->yaw_deg = model->symmetric ? 0 : pose.yaw / DEG;
    inst->pitch_deg = pose.pitch / DEG;
    inst->roll_deg = roll / DEG;
    inst->scale_px = s;
    *usable = n_visible >= 2;

done:
    free(model);
    free(shapes);
    free(obj_cov);
    free(hid_cov);
    return rc;
}

int dhf_synth_render_instance(const char *category, int style, uint64_t seed, const dhf_synth_scene_opts *o,
                              dhf_image *img, dhf_synth_instance *inst)
{
    if (o->min_size < 32 || o->max_size < o->min_size || o->max_size > 4096)
        return dhf_err_set("synth: image sides must satisfy 32 <= min (%d) <= max (%d) <= 4096", o->min_size,
                           o->max_size);
    img->rgb = NULL;
    for (int attempt = 0; attempt < 16; attempt++) {
        bool usable = false;
        uint64_t s = attempt == 0 ? seed : dhf_hash_combine(seed, (uint64_t)attempt);
        if (render_once(category, style, s, o, img, inst, &usable) != 0) {
            dhf_image_free(img);
            return -1;
        }
        if (usable)
            return 0;
        dhf_image_free(img);
    }
    return dhf_err_set("synth: no usable picture of '%s' after 16 draws (seed %llu)", category,
                       (unsigned long long)seed);
}
