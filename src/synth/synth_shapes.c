/* synth_shapes.c — part-based 3-D templates of the `dhf synth` categories
 * (quadrupeds: dog, cat, horse; bird with the 15 CUB parts; car; chair; bottle;
 * person bust), their named keypoints, pose sampling and projection to
 * scene-plane shapes. See synth_shapes.h for the frames. */
#include "synth/synth_shapes.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

#define DEG (M_PI / 180.0)

enum { POSE_SIDE = 0, POSE_ANY, POSE_FRONT, POSE_SYMMETRIC };

/* ---- keypoint names (id = index) ---------------------------------------- */

static const char *const QUAD_KPS[] = {
    "left eye",        "right eye",      "nose",      "left ear",  "right ear", "left front paw",
    "right front paw", "left back paw",  "right back paw", "tail base", "tail tip", "withers",
};
/* The 15 parts of CUB-200-2011, in CUB's parts.txt order. */
static const char *const BIRD_KPS[] = {
    "back", "beak", "belly",     "breast", "crown", "forehead",   "left eye", "left leg",
    "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat",
};
static const char *const CAR_KPS[] = {
    "front left wheel",  "front right wheel", "back left wheel", "back right wheel",
    "left headlight",    "right headlight",   "left taillight",  "right taillight",
    "roof front left",   "roof front right",  "roof back left",  "roof back right",
};
static const char *const CHAIR_KPS[] = {
    "seat front left", "seat front right", "seat back left", "seat back right", "front left foot",
    "front right foot", "back left foot",  "back right foot", "backrest top left", "backrest top right",
};
static const char *const BOTTLE_KPS[] = {
    "mouth left",    "mouth right",    "neck left", "neck right", "shoulder left",
    "shoulder right", "base left",     "base right", "label center",
};
static const char *const PERSON_KPS[] = {
    "left eye", "right eye", "nose", "mouth left", "mouth right", "left ear", "right ear", "chin",
    "left shoulder", "right shoulder",
};

typedef struct {
    const char *name;
    const char *const *kps;
    int n_kps;
} category_def;

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const category_def CATEGORIES[] = {
    {"bird", BIRD_KPS, N_OF(BIRD_KPS)},       {"bottle", BOTTLE_KPS, N_OF(BOTTLE_KPS)},
    {"car", CAR_KPS, N_OF(CAR_KPS)},          {"cat", QUAD_KPS, N_OF(QUAD_KPS)},
    {"chair", CHAIR_KPS, N_OF(CHAIR_KPS)},    {"dog", QUAD_KPS, N_OF(QUAD_KPS)},
    {"horse", QUAD_KPS, N_OF(QUAD_KPS)},      {"person", PERSON_KPS, N_OF(PERSON_KPS)},
};
static const char *const CATEGORY_NAMES[] = {"bird", "bottle", "car", "cat", "chair", "dog", "horse", "person"};
static const char *const DEFAULT_CATEGORIES[] = {"bird", "bottle", "car", "chair", "dog", "person"};

const char *const *dhf_synth_categories(int *n)
{
    *n = N_OF(CATEGORY_NAMES);
    return CATEGORY_NAMES;
}

const char *const *dhf_synth_default_categories(int *n)
{
    *n = N_OF(DEFAULT_CATEGORIES);
    return DEFAULT_CATEGORIES;
}

static const category_def *find_category(const char *name)
{
    for (int i = 0; i < N_OF(CATEGORIES); i++)
        if (strcmp(CATEGORIES[i].name, name) == 0)
            return &CATEGORIES[i];
    return NULL;
}

bool dhf_synth_category_known(const char *category)
{
    return category && find_category(category) != NULL;
}

int dhf_synth_keypoint_names(const char *category, const char *names[DHF_SYNTH_MAX_KPS], int *n)
{
    const category_def *c = find_category(category);
    if (!c)
        return dhf_err_set("synth: unknown category '%s'", category);
    for (int i = 0; i < c->n_kps; i++)
        names[i] = c->kps[i];
    *n = c->n_kps;
    return 0;
}

/* ---- building blocks ---------------------------------------------------- */

typedef struct {
    dhf_synth_model *m;
    bool full;
} builder;

static dhf_rgbf rgb(double r, double g, double b)
{
    dhf_rgbf c = {(float)r, (float)g, (float)b};
    return c;
}

static dhf_rgbf hsv(double h, double s, double v)
{
    h = fmod(h, 1.0);
    if (h < 0)
        h += 1.0;
    double i = floor(h * 6), f = h * 6 - i;
    double p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    switch ((int)i % 6) {
    case 0: return rgb(v, t, p);
    case 1: return rgb(q, v, p);
    case 2: return rgb(p, v, t);
    case 3: return rgb(p, q, v);
    case 4: return rgb(t, p, v);
    default: return rgb(v, p, q);
    }
}

static double clamp01(double v)
{
    return v < 0 ? 0 : (v > 1 ? 1 : v);
}

static dhf_rgbf scale_rgb(dhf_rgbf c, double f)
{
    return rgb(clamp01(c.r * f), clamp01(c.g * f), clamp01(c.b * f));
}

static dhf_rgbf mix(dhf_rgbf a, dhf_rgbf b, double t)
{
    return rgb(a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t);
}

/* Small per-instance colour variation: brightness and a little per-channel noise. */
static dhf_rgbf jitter(dhf_rgbf c, dhf_rng *r, double amount)
{
    double f = 1 + dhf_rng_range(r, -amount, amount);
    return rgb(clamp01(c.r * f + dhf_rng_range(r, -amount, amount) * 0.3),
               clamp01(c.g * f + dhf_rng_range(r, -amount, amount) * 0.3),
               clamp01(c.b * f + dhf_rng_range(r, -amount, amount) * 0.3));
}

static dhf_paint solid(dhf_rgbf c, float shade)
{
    dhf_paint p;
    memset(&p, 0, sizeof p);
    p.kind = DHF_PAINT_SOLID;
    p.a = p.b = c;
    p.dir_x = 1;
    p.scale = 1;
    p.shade = shade;
    return p;
}

static dhf_paint pattern(dhf_paint_kind kind, dhf_rgbf a, dhf_rgbf b, double scale, double fill, double dir_x,
                         double dir_y, uint32_t seed, float shade)
{
    dhf_paint p = solid(a, shade);
    p.kind = kind;
    p.b = b;
    p.scale = scale;
    p.fill = fill;
    p.dir_x = dir_x;
    p.dir_y = dir_y;
    p.seed = seed;
    return p;
}

static dhf_solid *add_solid(builder *b, dhf_solid_kind kind, int group, const dhf_paint *paint)
{
    if (b->m->n_solids >= DHF_SYNTH_MAX_SOLIDS) {
        b->full = true;
        return NULL;
    }
    dhf_solid *s = &b->m->solids[b->m->n_solids++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->group = group;
    s->paint = *paint;
    return s;
}

static dhf_solid *ellipsoid(builder *b, int group, const dhf_paint *paint, const double c[3], double rx, double ry,
                            double rz, double roll)
{
    dhf_solid *s = add_solid(b, DHF_SOLID_ELLIPSOID, group, paint);
    if (!s)
        return NULL;
    memcpy(s->c, c, sizeof s->c);
    s->r[0] = rx;
    s->r[1] = ry;
    s->r[2] = rz;
    s->roll = roll;
    return s;
}

static dhf_solid *tube(builder *b, int group, const dhf_paint *paint, const double a[3], const double e[3], double ra,
                       double rb)
{
    dhf_solid *s = add_solid(b, DHF_SOLID_TUBE, group, paint);
    if (!s)
        return NULL;
    memcpy(s->a, a, sizeof s->a);
    memcpy(s->b, e, sizeof s->b);
    s->ra = ra;
    s->rb = rb;
    return s;
}

static dhf_solid *panel(builder *b, int group, const dhf_paint *paint, int n, const double (*v)[3], double nx,
                        double ny, double nz)
{
    if (n > DHF_SHAPE_MAX_VERTS) {
        b->full = true;
        return NULL;
    }
    dhf_solid *s = add_solid(b, DHF_SOLID_PANEL, group, paint);
    if (!s)
        return NULL;
    s->n = n;
    memcpy(s->v, v, sizeof(double[3]) * (size_t)n);
    s->normal[0] = nx;
    s->normal[1] = ny;
    s->normal[2] = nz;
    return s;
}

/* An axis-aligned box as up to five outward-facing panels (no bottom: the
 * camera never looks from below). */
static void box(builder *b, int group, const dhf_paint *paint, double x0, double x1, double y0, double y1, double z0,
                double z1)
{
    const double top[4][3] = {{x0, y1, z0}, {x1, y1, z0}, {x1, y1, z1}, {x0, y1, z1}};
    const double front[4][3] = {{x1, y0, z0}, {x1, y1, z0}, {x1, y1, z1}, {x1, y0, z1}};
    const double back[4][3] = {{x0, y0, z0}, {x0, y1, z0}, {x0, y1, z1}, {x0, y0, z1}};
    const double right[4][3] = {{x0, y0, z1}, {x1, y0, z1}, {x1, y1, z1}, {x0, y1, z1}};
    const double left[4][3] = {{x0, y0, z0}, {x1, y0, z0}, {x1, y1, z0}, {x0, y1, z0}};
    panel(b, group, paint, 4, top, 0, 1, 0);
    panel(b, group, paint, 4, front, 1, 0, 0);
    panel(b, group, paint, 4, back, -1, 0, 0);
    panel(b, group, paint, 4, right, 0, 0, 1);
    panel(b, group, paint, 4, left, 0, 0, -1);
}

static void add_kp(builder *b, int id, const char *name, int group, const double p[3], double nx, double ny,
                   double nz)
{
    if (id >= DHF_SYNTH_MAX_KPS) {
        b->full = true;
        return;
    }
    dhf_synth_keypoint *k = &b->m->kps[id];
    k->name = name;
    memcpy(k->p, p, sizeof k->p);
    k->group = group;
    k->normal[0] = nx;
    k->normal[1] = ny;
    k->normal[2] = nz;
    if (id + 1 > b->m->n_kps)
        b->m->n_kps = id + 1;
}

/* Point on an ellipsoid's surface in the direction d of its unit sphere
 * (d normalised here), with the outward normal there. */
static void surface(const double c[3], double rx, double ry, double rz, double roll, double dx, double dy, double dz,
                    double p[3], double n[3])
{
    double l = sqrt(dx * dx + dy * dy + dz * dz);
    dx /= l;
    dy /= l;
    dz /= l;
    double lx = rx * dx, ly = ry * dy, lz = rz * dz;
    double gx = dx / rx, gy = dy / ry, gz = dz / rz;
    double cr = cos(roll), sr = sin(roll);
    p[0] = c[0] + cr * lx - sr * ly;
    p[1] = c[1] + sr * lx + cr * ly;
    p[2] = c[2] + lz;
    double nxr = cr * gx - sr * gy, nyr = sr * gx + cr * gy;
    double gl = sqrt(nxr * nxr + nyr * nyr + gz * gz);
    n[0] = nxr / gl;
    n[1] = nyr / gl;
    n[2] = gz / gl;
}

static void v3(double o[3], double x, double y, double z)
{
    o[0] = x;
    o[1] = y;
    o[2] = z;
}

/* o = c + Rz(roll) (x, y, 0) + (0, 0, z) */
static void offset_rolled(double o[3], const double c[3], double roll, double x, double y, double z)
{
    o[0] = c[0] + cos(roll) * x - sin(roll) * y;
    o[1] = c[1] + sin(roll) * x + cos(roll) * y;
    o[2] = c[2] + z;
}

static dhf_rgbf pick(dhf_rng *r, const dhf_rgbf *list, int n)
{
    return list[dhf_rng_below(r, n)];
}

/* ---- quadrupeds ----------------------------------------------------------- */

enum {
    QG_BODY = 1, QG_HEAD, QG_NOSE, QG_EYE_L, QG_EYE_R, QG_EAR_L, QG_EAR_R,
    QG_LEG_LF, QG_LEG_RF, QG_LEG_LB, QG_LEG_RB, QG_TAIL,
};

typedef struct {
    double body_rx, body_ry, body_rz, leg_h, leg_ra, leg_rb;
    double neck_dx, neck_dy, neck_r;
    double head_rx, head_ry, head_rz, head_roll, snout_len, snout_r;
    int ear_kind; /* 0 pointy, 1 floppy */
    double ear_len, ear_r;
    double tail_len, tail_angle, tail_curl, tail_r;
    int hooves;
} quad_shape;

static void quad_look(const char *species, dhf_rng *r, dhf_paint *coat, dhf_paint *head, dhf_paint *ear,
                      dhf_paint *muzzle, dhf_paint *tailp, dhf_rgbf *paw)
{
    uint32_t seed = (uint32_t)dhf_rng_u64(r);
    double dir = dhf_rng_range(r, -0.4, 0.4);
    if (strcmp(species, "cat") == 0) {
        static const dhf_rgbf base[] = {{0.86f, 0.52f, 0.20f}, {0.55f, 0.55f, 0.57f}, {0.12f, 0.11f, 0.11f},
                                        {0.92f, 0.90f, 0.86f}, {0.62f, 0.46f, 0.32f}};
        dhf_rgbf a = jitter(pick(r, base, N_OF(base)), r, 0.12);
        int style = dhf_rng_below(r, 3);
        if (style == 0) /* tabby */
            *coat = pattern(DHF_PAINT_STRIPES, a, scale_rgb(a, 0.55), dhf_rng_range(r, 0.09, 0.14), 0.4, 1, dir,
                            seed, 0.6f);
        else if (style == 1) /* calico-like patches */
            *coat = pattern(DHF_PAINT_SPOTS, rgb(0.93, 0.91, 0.87), a, dhf_rng_range(r, 0.25, 0.4), 0.45, 1, 0,
                            seed, 0.6f);
        else
            *coat = solid(a, 0.6f);
        *head = *coat;
        *ear = solid(scale_rgb(a, 0.85), 0.5f);
        *muzzle = solid(mix(a, rgb(0.95, 0.93, 0.9), 0.5), 0.5f);
        *tailp = *coat;
        *paw = mix(a, rgb(0.95, 0.93, 0.9), 0.3);
    } else if (strcmp(species, "horse") == 0) {
        static const dhf_rgbf base[] = {{0.42f, 0.25f, 0.13f}, {0.62f, 0.32f, 0.14f}, {0.13f, 0.11f, 0.10f},
                                        {0.82f, 0.81f, 0.78f}, {0.86f, 0.72f, 0.46f}, {0.55f, 0.52f, 0.5f}};
        dhf_rgbf a = jitter(pick(r, base, N_OF(base)), r, 0.1);
        if (dhf_rng_chance(r, 0.3)) /* dappled */
            *coat = pattern(DHF_PAINT_NOISE, a, scale_rgb(a, 0.7), 0.18, 0, 1, 0, seed, 0.6f);
        else
            *coat = solid(a, 0.6f);
        *head = *coat;
        *ear = solid(scale_rgb(a, 0.9), 0.5f);
        *muzzle = solid(scale_rgb(a, 0.7), 0.5f);
        dhf_rgbf hair = dhf_rng_chance(r, 0.5) ? scale_rgb(a, 0.35) : mix(a, rgb(0.95, 0.92, 0.85), 0.6);
        *tailp = solid(hair, 0.4f);
        *paw = rgb(0.18, 0.16, 0.15);
    } else { /* dog */
        static const dhf_rgbf base[] = {{0.45f, 0.28f, 0.15f}, {0.80f, 0.62f, 0.38f}, {0.13f, 0.12f, 0.12f},
                                        {0.90f, 0.86f, 0.78f}, {0.55f, 0.55f, 0.57f}, {0.86f, 0.62f, 0.30f}};
        dhf_rgbf a = jitter(pick(r, base, N_OF(base)), r, 0.12);
        int style = dhf_rng_below(r, 4);
        if (style == 0) /* dalmatian-like spots */
            *coat = pattern(DHF_PAINT_SPOTS, rgb(0.93, 0.92, 0.9), rgb(0.1, 0.1, 0.1), dhf_rng_range(r, 0.12, 0.2),
                            0.28, 1, 0, seed, 0.6f);
        else if (style == 1) /* two-tone patches */
            *coat = pattern(DHF_PAINT_NOISE, a, scale_rgb(a, 0.45), dhf_rng_range(r, 0.3, 0.5), 0, 1, 0, seed, 0.6f);
        else
            *coat = solid(a, 0.6f);
        *head = *coat;
        *ear = solid(scale_rgb(coat->a, 0.7), 0.5f);
        *muzzle = solid(mix(coat->a, rgb(0.9, 0.86, 0.8), 0.35), 0.5f);
        *tailp = *coat;
        *paw = scale_rgb(coat->a, 0.9);
    }
}

static void quad_params(const char *species, dhf_rng *r, quad_shape *q)
{
    if (strcmp(species, "cat") == 0) {
        q->body_rx = dhf_rng_range(r, 0.55, 0.68);
        q->body_ry = dhf_rng_range(r, 0.19, 0.24);
        q->body_rz = q->body_ry * dhf_rng_range(r, 0.95, 1.1);
        q->leg_h = dhf_rng_range(r, 0.42, 0.52);
        q->leg_ra = 0.07;
        q->leg_rb = 0.05;
        q->neck_dx = 0.05;
        q->neck_dy = dhf_rng_range(r, 0.14, 0.24);
        q->neck_r = 0.13;
        q->head_rx = dhf_rng_range(r, 0.19, 0.22);
        q->head_ry = q->head_rx * dhf_rng_range(r, 0.9, 1.0);
        q->head_rz = q->head_rx * 0.95;
        q->head_roll = 0;
        q->snout_len = dhf_rng_range(r, 0.06, 0.1);
        q->snout_r = 0.08;
        q->ear_kind = 0;
        q->ear_len = dhf_rng_range(r, 0.13, 0.18);
        q->ear_r = 0.08;
        q->tail_len = dhf_rng_range(r, 0.6, 0.85);
        q->tail_angle = dhf_rng_range(r, 20, 75) * DEG;
        q->tail_curl = dhf_rng_range(r, -40, 40) * DEG;
        q->tail_r = 0.045;
        q->hooves = 0;
    } else if (strcmp(species, "horse") == 0) {
        q->body_rx = dhf_rng_range(r, 0.78, 0.9);
        q->body_ry = dhf_rng_range(r, 0.3, 0.36);
        q->body_rz = q->body_ry * dhf_rng_range(r, 0.85, 0.95);
        q->leg_h = dhf_rng_range(r, 0.95, 1.15);
        q->leg_ra = 0.1;
        q->leg_rb = 0.055;
        q->neck_dx = dhf_rng_range(r, 0.22, 0.32);
        q->neck_dy = dhf_rng_range(r, 0.55, 0.75);
        q->neck_r = 0.2;
        q->head_rx = dhf_rng_range(r, 0.33, 0.4);
        q->head_ry = 0.14;
        q->head_rz = 0.12;
        q->head_roll = dhf_rng_range(r, -1.05, -0.75);
        q->snout_len = 0.1;
        q->snout_r = 0.11;
        q->ear_kind = 0;
        q->ear_len = dhf_rng_range(r, 0.12, 0.17);
        q->ear_r = 0.05;
        q->tail_len = dhf_rng_range(r, 0.7, 0.95);
        q->tail_angle = dhf_rng_range(r, -75, -50) * DEG;
        q->tail_curl = dhf_rng_range(r, -15, 5) * DEG;
        q->tail_r = 0.1;
        q->hooves = 1;
    } else { /* dog */
        q->body_rx = dhf_rng_range(r, 0.6, 0.85);
        q->body_ry = dhf_rng_range(r, 0.24, 0.33);
        q->body_rz = q->body_ry * dhf_rng_range(r, 0.85, 1.0);
        q->leg_h = dhf_rng_range(r, 0.5, 0.85);
        q->leg_ra = dhf_rng_range(r, 0.08, 0.11);
        q->leg_rb = q->leg_ra * 0.7;
        q->neck_dx = dhf_rng_range(r, 0.05, 0.15);
        q->neck_dy = dhf_rng_range(r, 0.2, 0.4);
        q->neck_r = 0.17;
        q->head_rx = dhf_rng_range(r, 0.22, 0.28);
        q->head_ry = q->head_rx * dhf_rng_range(r, 0.85, 0.95);
        q->head_rz = q->head_rx * 0.8;
        q->head_roll = dhf_rng_range(r, -0.15, 0.1);
        q->snout_len = dhf_rng_range(r, 0.16, 0.32);
        q->snout_r = dhf_rng_range(r, 0.09, 0.12);
        q->ear_kind = dhf_rng_chance(r, 0.5) ? 1 : 0;
        q->ear_len = q->ear_kind ? dhf_rng_range(r, 0.2, 0.3) : dhf_rng_range(r, 0.16, 0.24);
        q->ear_r = 0.08;
        q->tail_len = dhf_rng_range(r, 0.35, 0.6);
        q->tail_angle = dhf_rng_range(r, -10, 60) * DEG;
        q->tail_curl = dhf_rng_range(r, -20, 30) * DEG;
        q->tail_r = 0.055;
        q->hooves = 0;
    }
}

static void build_quadruped(builder *b, const char *species, dhf_rng *r)
{
    quad_shape q;
    quad_params(species, r, &q);
    dhf_paint coat, headp, ear, muzzle, tailp;
    dhf_rgbf pawc;
    quad_look(species, r, &coat, &headp, &ear, &muzzle, &tailp, &pawc);
    dhf_paint dark = solid(rgb(0.06, 0.05, 0.05), 0.3f);
    dhf_paint paw = solid(pawc, 0.5f);
    b->m->pose_family = POSE_SIDE;

    double bc[3], p[3], e[3], n[3];
    v3(bc, 0, q.leg_h + q.body_ry * 0.9, 0);
    /* legs first in the list: at equal depth the body is drawn over them */
    static const int leg_group[4] = {QG_LEG_LF, QG_LEG_RF, QG_LEG_LB, QG_LEG_RB};
    for (int i = 0; i < 4; i++) {
        bool front = i < 2;
        double side = (i % 2 == 0) ? -1 : 1; /* left legs at z < 0 */
        double x = (front ? 0.62 : -0.62) * q.body_rx;
        double swing = dhf_rng_range(r, -0.12, 0.12);
        v3(p, x, bc[1] - q.body_ry * 0.2, side * q.body_rz * 0.55);
        v3(e, x + swing, q.hooves ? 0.07 : 0.05, side * q.body_rz * 0.55);
        tube(b, leg_group[i], &coat, p, e, q.leg_ra, q.leg_rb);
        double pc[3];
        v3(pc, e[0] + (q.hooves ? 0 : 0.035), q.hooves ? 0.05 : 0.04, e[2]);
        dhf_solid *s = ellipsoid(b, leg_group[i], &paw, pc, q.leg_rb * (q.hooves ? 1.15 : 1.6),
                                 q.hooves ? 0.06 : 0.045, q.leg_rb * 1.2, 0);
        if (s)
            s->depth_bias = 0.001;
        add_kp(b, 5 + i, QUAD_KPS[5 + i], leg_group[i], pc, 0, 0, 0);
    }
    /* tail (two segments for a curve) */
    double tb[3], tm[3], tt[3];
    v3(tb, -q.body_rx * 0.97, bc[1] + q.body_ry * 0.45, 0);
    v3(tm, tb[0] - 0.5 * q.tail_len * cos(q.tail_angle), tb[1] + 0.5 * q.tail_len * sin(q.tail_angle), 0);
    double a2 = q.tail_angle + q.tail_curl;
    v3(tt, tm[0] - 0.5 * q.tail_len * cos(a2), tm[1] + 0.5 * q.tail_len * sin(a2), 0);
    tube(b, QG_TAIL, &tailp, tb, tm, q.tail_r, q.tail_r * 0.8);
    tube(b, QG_TAIL, &tailp, tm, tt, q.tail_r * 0.8, q.tail_r * 0.35);
    add_kp(b, 9, QUAD_KPS[9], QG_TAIL, tb, 0, 0, 0);
    add_kp(b, 10, QUAD_KPS[10], QG_TAIL, tt, 0, 0, 0);

    /* body: barrel + chest + rump */
    ellipsoid(b, QG_BODY, &coat, bc, q.body_rx, q.body_ry, q.body_rz, 0);
    double cc[3], rc[3];
    v3(cc, q.body_rx * 0.55, bc[1] + q.body_ry * 0.12, 0);
    ellipsoid(b, QG_BODY, &coat, cc, q.body_rx * 0.45, q.body_ry * 1.12, q.body_rz * 1.02, 0);
    v3(rc, -q.body_rx * 0.58, bc[1] + q.body_ry * 0.05, 0);
    ellipsoid(b, QG_BODY, &coat, rc, q.body_rx * 0.42, q.body_ry * 1.02, q.body_rz * 0.98, 0);
    v3(p, cc[0], cc[1] + q.body_ry * 1.12, 0);
    add_kp(b, 11, QUAD_KPS[11], QG_BODY, p, 0, 1, 0);

    /* neck and head */
    double hc[3];
    v3(hc, q.body_rx * 0.9 + q.neck_dx, bc[1] + q.body_ry + q.neck_dy, 0);
    v3(p, q.body_rx * 0.62, bc[1] + q.body_ry * 0.45, 0);
    dhf_solid *neck = tube(b, QG_BODY, &coat, p, hc, q.neck_r, q.head_ry * 0.75);
    if (neck)
        neck->depth_bias = 0.05;
    dhf_solid *hs = ellipsoid(b, QG_HEAD, &headp, hc, q.head_rx, q.head_ry, q.head_rz, q.head_roll);
    if (hs)
        hs->depth_bias = 0.3;
    double sc[3];
    offset_rolled(sc, hc, q.head_roll, q.head_rx * 0.72 + q.snout_len * 0.5, -q.head_ry * 0.32, 0);
    dhf_solid *sn = ellipsoid(b, QG_HEAD, &muzzle, sc, q.snout_len * 0.6 + 0.03, q.snout_r, q.snout_r * 0.95,
                              q.head_roll);
    if (sn)
        sn->depth_bias = 0.32;
    double nc[3];
    offset_rolled(nc, sc, q.head_roll, q.snout_len * 0.6 + 0.01, q.snout_r * 0.3, 0);
    dhf_solid *ns = ellipsoid(b, QG_NOSE, &dark, nc, 0.04, 0.035, 0.045, q.head_roll);
    if (ns)
        ns->depth_bias = 0.33;
    add_kp(b, 2, QUAD_KPS[2], QG_NOSE, nc, cos(q.head_roll), sin(q.head_roll), 0);
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1;
        /* eye */
        surface(hc, q.head_rx, q.head_ry, q.head_rz, q.head_roll, 0.55, 0.4, side * 0.73, p, n);
        dhf_solid *es = ellipsoid(b, s == 0 ? QG_EYE_L : QG_EYE_R, &dark, p, 0.04, 0.04, 0.03, 0);
        if (es)
            es->depth_bias = 0.3;
        add_kp(b, s, QUAD_KPS[s], s == 0 ? QG_EYE_L : QG_EYE_R, p, n[0], n[1], n[2]);
        /* ear */
        double base[3], tip[3];
        if (q.ear_kind == 0) {
            surface(hc, q.head_rx, q.head_ry, q.head_rz, q.head_roll, -0.25, 0.85, side * 0.45, base, n);
            offset_rolled(tip, base, q.head_roll, -0.05, q.ear_len, side * 0.05);
            dhf_solid *t = tube(b, s == 0 ? QG_EAR_L : QG_EAR_R, &ear, base, tip, q.ear_r, 0.012);
            if (t)
                t->depth_bias = 0.29;
        } else {
            surface(hc, q.head_rx, q.head_ry, q.head_rz, q.head_roll, -0.3, 0.6, side * 0.75, base, n);
            offset_rolled(tip, base, q.head_roll, -0.05, -q.ear_len, side * 0.06);
            dhf_solid *t = tube(b, s == 0 ? QG_EAR_L : QG_EAR_R, &ear, base, tip, q.ear_r, q.ear_r * 0.75);
            if (t)
                t->depth_bias = 0.31;
        }
        add_kp(b, 3 + s, QUAD_KPS[3 + s], s == 0 ? QG_EAR_L : QG_EAR_R, tip, 0, 0, 0);
    }
}

/* ---- bird (CUB's 15 parts) -------------------------------------------------- */

enum {
    BG_BODY = 1, BG_HEAD, BG_BEAK, BG_EYE_L, BG_EYE_R, BG_WING_L, BG_WING_R, BG_LEG_L, BG_LEG_R, BG_TAIL,
};

typedef struct {
    const char *name;
    dhf_rgbf body, wing, head, breast, beak, legs;
    int wing_pattern, breast_pattern; /* 0 solid, 1 stripes, 2 spots */
    double beak_len, beak_r, tail_len, tail_fork, body_scale, crest;
} bird_style;

static const bird_style BIRD_STYLES[] = {
    {"Crimson_Finch", {0.78f, 0.12f, 0.10f}, {0.45f, 0.12f, 0.10f}, {0.82f, 0.10f, 0.10f}, {0.90f, 0.30f, 0.25f},
     {0.95f, 0.60f, 0.25f}, {0.45f, 0.35f, 0.30f}, 0, 0, 0.16, 0.075, 0.45, 0.0, 1.0, 0.0},
    {"Azure_Jay", {0.22f, 0.42f, 0.85f}, {0.18f, 0.35f, 0.80f}, {0.25f, 0.45f, 0.88f}, {0.88f, 0.90f, 0.92f},
     {0.08f, 0.08f, 0.08f}, {0.15f, 0.15f, 0.15f}, 1, 0, 0.26, 0.06, 0.75, 0.0, 1.1, 0.22},
    {"Golden_Warbler", {0.95f, 0.80f, 0.15f}, {0.50f, 0.52f, 0.18f}, {0.96f, 0.84f, 0.20f}, {0.98f, 0.90f, 0.35f},
     {0.20f, 0.18f, 0.15f}, {0.55f, 0.45f, 0.35f}, 1, 0, 0.2, 0.04, 0.4, 0.0, 0.85, 0.0},
    {"Slate_Sparrow", {0.50f, 0.42f, 0.35f}, {0.40f, 0.30f, 0.22f}, {0.45f, 0.45f, 0.48f}, {0.82f, 0.80f, 0.76f},
     {0.30f, 0.28f, 0.25f}, {0.60f, 0.50f, 0.42f}, 1, 0, 0.14, 0.06, 0.45, 0.0, 0.9, 0.0},
    {"Emerald_Kingfisher", {0.10f, 0.55f, 0.55f}, {0.08f, 0.45f, 0.60f}, {0.10f, 0.50f, 0.62f},
     {0.92f, 0.50f, 0.15f}, {0.12f, 0.10f, 0.10f}, {0.85f, 0.30f, 0.20f}, 0, 0, 0.5, 0.06, 0.3, 0.0, 1.0, 0.0},
    {"Snowy_Gull", {0.94f, 0.94f, 0.94f}, {0.62f, 0.64f, 0.68f}, {0.96f, 0.96f, 0.96f}, {0.97f, 0.97f, 0.97f},
     {0.95f, 0.80f, 0.20f}, {0.90f, 0.70f, 0.30f}, 0, 0, 0.34, 0.055, 0.45, 0.0, 1.25, 0.0},
    {"Ebony_Blackbird", {0.10f, 0.10f, 0.12f}, {0.08f, 0.08f, 0.10f}, {0.10f, 0.10f, 0.12f},
     {0.14f, 0.13f, 0.15f}, {0.98f, 0.65f, 0.10f}, {0.20f, 0.18f, 0.18f}, 0, 0, 0.24, 0.05, 0.6, 0.12, 1.0, 0.0},
    {"Spotted_Thrush", {0.52f, 0.38f, 0.24f}, {0.46f, 0.33f, 0.20f}, {0.50f, 0.37f, 0.24f},
     {0.94f, 0.90f, 0.80f}, {0.25f, 0.22f, 0.18f}, {0.80f, 0.65f, 0.55f}, 0, 2, 0.2, 0.05, 0.5, 0.0, 1.0, 0.0},
};

void dhf_synth_bird_class_name(int style, char *buf, size_t n)
{
    if (style >= 0 && style < N_OF(BIRD_STYLES))
        snprintf(buf, n, "%s", BIRD_STYLES[style].name);
    else
        snprintf(buf, n, "Synthetic_Bird_%03d", style + 1);
}

/* A style for classes past the named ones: everything drawn from the class's
 * own seed, so the class keeps one look across its images. */
static void random_bird_style(uint64_t seed, bird_style *s)
{
    dhf_rng r;
    dhf_rng_seed(&r, seed);
    double h = dhf_rng_unit(&r);
    memset(s, 0, sizeof *s);
    s->name = NULL;
    s->body = hsv(h, dhf_rng_range(&r, 0.3, 0.9), dhf_rng_range(&r, 0.35, 0.95));
    s->wing = hsv(h + dhf_rng_range(&r, -0.1, 0.1), dhf_rng_range(&r, 0.3, 0.9), dhf_rng_range(&r, 0.25, 0.8));
    s->head = dhf_rng_chance(&r, 0.5) ? s->body : hsv(dhf_rng_unit(&r), 0.7, 0.8);
    s->breast = hsv(dhf_rng_unit(&r), dhf_rng_range(&r, 0.0, 0.6), dhf_rng_range(&r, 0.6, 1.0));
    s->beak = hsv(dhf_rng_range(&r, 0.05, 0.15), dhf_rng_range(&r, 0, 0.9), dhf_rng_range(&r, 0.1, 0.95));
    s->legs = hsv(0.05, 0.4, dhf_rng_range(&r, 0.2, 0.7));
    s->wing_pattern = dhf_rng_below(&r, 2);
    s->breast_pattern = dhf_rng_chance(&r, 0.3) ? 2 : 0;
    s->beak_len = dhf_rng_range(&r, 0.13, 0.45);
    s->beak_r = dhf_rng_range(&r, 0.04, 0.075);
    s->tail_len = dhf_rng_range(&r, 0.3, 0.75);
    s->tail_fork = dhf_rng_chance(&r, 0.3) ? 0.12 : 0;
    s->body_scale = dhf_rng_range(&r, 0.85, 1.2);
    s->crest = dhf_rng_chance(&r, 0.2) ? 0.2 : 0;
}

static void build_bird(builder *b, int style, dhf_rng *r)
{
    bird_style st;
    double jit;
    if (style >= 0) {
        if (style < N_OF(BIRD_STYLES))
            st = BIRD_STYLES[style];
        else
            random_bird_style(dhf_hash_combine(0xb1bdULL, (uint64_t)style), &st);
        jit = 0.06;
    } else { /* SPair-like: any look, larger variation */
        if (dhf_rng_chance(r, 0.5))
            st = BIRD_STYLES[dhf_rng_below(r, N_OF(BIRD_STYLES))];
        else
            random_bird_style(dhf_rng_u64(r), &st);
        jit = 0.15;
    }
    b->m->pose_family = POSE_SIDE;
    double k = st.body_scale * (1 + dhf_rng_range(r, -jit, jit));
    double brx = 0.5 * k, bry = 0.3 * k, brz = 0.27 * k;
    double roll = dhf_rng_range(r, 0.2, 0.5);
    double leg_len = dhf_rng_range(r, 0.18, 0.3);
    double bc[3], p[3], e[3], n[3];
    v3(bc, 0, leg_len + bry * 0.95, 0);
    uint32_t seed = (uint32_t)dhf_rng_u64(r);
    dhf_paint body = solid(jitter(st.body, r, jit), 0.65f);
    dhf_rgbf wc = jitter(st.wing, r, jit);
    dhf_paint wing = st.wing_pattern == 1
                         ? pattern(DHF_PAINT_STRIPES, wc, scale_rgb(wc, 0.45), 0.09, 0.35, 1, -0.6, seed, 0.6f)
                         : solid(wc, 0.6f);
    dhf_paint head = solid(jitter(st.head, r, jit), 0.65f);
    dhf_rgbf brc = jitter(st.breast, r, jit);
    dhf_paint breast = st.breast_pattern == 2
                           ? pattern(DHF_PAINT_SPOTS, brc, rgb(0.25, 0.18, 0.12), 0.07, 0.28, 1, 0, seed + 5, 0.6f)
                           : solid(brc, 0.6f);
    dhf_paint beak = solid(jitter(st.beak, r, jit * 0.5), 0.5f);
    dhf_paint legs = solid(st.legs, 0.3f);
    dhf_paint dark = solid(rgb(0.04, 0.04, 0.05), 0.2f);
    dhf_paint ring = solid(rgb(0.92, 0.9, 0.85), 0.2f);

    /* legs and feet */
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1;
        int g = s == 0 ? BG_LEG_L : BG_LEG_R;
        double x = dhf_rng_range(r, -0.08, 0.06);
        v3(p, x, bc[1] - bry * 0.6, side * 0.09);
        v3(e, x + dhf_rng_range(r, -0.04, 0.04), 0.02, side * 0.09);
        tube(b, g, &legs, p, e, 0.028, 0.022);
        double toe[3];
        v3(toe, e[0] + 0.12, 0.0, e[2]);
        tube(b, g, &legs, e, toe, 0.022, 0.012);
        add_kp(b, s == 0 ? 7 : 11, BIRD_KPS[s == 0 ? 7 : 11], g, e, 0, 0, 0);
    }
    /* tail: a flat fan behind the body */
    double ta = dhf_rng_range(r, 10, 35) * DEG, tl = st.tail_len * (1 + dhf_rng_range(r, -jit, jit)) * k;
    double tw = dhf_rng_range(r, 0.1, 0.16) * k;
    double base[3];
    offset_rolled(base, bc, roll, -brx * 0.8, 0, 0);
    double dx = -cos(ta), dy = -sin(ta), nx = -dy, ny = dx; /* direction and its normal */
    double fan[5][3];
    v3(fan[0], base[0] + nx * 0.07, base[1] + ny * 0.07, 0);
    v3(fan[1], base[0] + dx * tl + nx * tw, base[1] + dy * tl + ny * tw, 0);
    v3(fan[2], base[0] + dx * tl * (1 - st.tail_fork), base[1] + dy * tl * (1 - st.tail_fork), 0);
    v3(fan[3], base[0] + dx * tl - nx * tw, base[1] + dy * tl - ny * tw, 0);
    v3(fan[4], base[0] - nx * 0.07, base[1] - ny * 0.07, 0);
    panel(b, BG_TAIL, &wing, 5, (const double (*)[3])fan, 0, 0, 0);
    v3(p, base[0] + dx * tl * 0.7, base[1] + dy * tl * 0.7, 0);
    add_kp(b, 13, BIRD_KPS[13], BG_TAIL, p, 0, 0, 0);

    /* body and breast */
    ellipsoid(b, BG_BODY, &body, bc, brx, bry, brz, roll);
    double brc3[3];
    offset_rolled(brc3, bc, roll, brx * 0.3, -bry * 0.18, 0);
    dhf_solid *bs = ellipsoid(b, BG_BODY, &breast, brc3, brx * 0.72, bry * 0.85, brz * 0.96, roll);
    if (bs)
        bs->depth_bias = 0.002;
    surface(bc, brx, bry, brz, roll, -0.1, 1, 0, p, n);
    add_kp(b, 0, BIRD_KPS[0], BG_BODY, p, n[0], n[1], n[2]); /* back */
    surface(brc3, brx * 0.72, bry * 0.85, brz * 0.96, roll, 0.1, -1, 0, p, n);
    add_kp(b, 2, BIRD_KPS[2], BG_BODY, p, n[0], n[1], n[2]); /* belly */
    surface(brc3, brx * 0.72, bry * 0.85, brz * 0.96, roll, 0.85, 0.15, 0, p, n);
    add_kp(b, 3, BIRD_KPS[3], BG_BODY, p, n[0], n[1], n[2]); /* breast */

    /* wings over the body's flanks */
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1;
        int g = s == 0 ? BG_WING_L : BG_WING_R;
        double wcn[3];
        offset_rolled(wcn, bc, roll, -brx * 0.2, bry * 0.15, side * brz * 0.88);
        ellipsoid(b, g, &wing, wcn, brx * 0.85, bry * 0.55, 0.06 * k, roll - 0.12);
        add_kp(b, s == 0 ? 8 : 12, BIRD_KPS[s == 0 ? 8 : 12], g, wcn, 0, 0, side);
    }

    /* head, crest, beak, eyes */
    double hr = 0.2 * k * (1 + dhf_rng_range(r, -jit, jit));
    double hc[3];
    offset_rolled(hc, bc, roll, brx * 0.88, bry * 0.55, 0);
    hc[1] += hr * 0.55;
    double hrx = hr * 1.05, hry = hr, hrz = hr * 0.9;
    dhf_solid *hs = ellipsoid(b, BG_HEAD, &head, hc, hrx, hry, hrz, 0);
    if (hs)
        hs->depth_bias = 0.3;
    if (st.crest > 0) {
        surface(hc, hrx, hry, hrz, 0, -0.4, 0.9, 0, p, n);
        v3(e, p[0] - st.crest * 0.7, p[1] + st.crest * 0.6, 0);
        dhf_solid *cs = tube(b, BG_HEAD, &head, p, e, hr * 0.45, 0.01);
        if (cs)
            cs->depth_bias = 0.29;
    }
    double bl = st.beak_len * (1 + dhf_rng_range(r, -jit, jit)) * k;
    surface(hc, hrx, hry, hrz, 0, 0.97, -0.15, 0, p, n);
    p[0] -= 0.02;
    v3(e, p[0] + bl, p[1] - bl * dhf_rng_range(r, 0.05, 0.3), 0);
    dhf_solid *bk = tube(b, BG_BEAK, &beak, p, e, st.beak_r * k, 0.012);
    if (bk)
        bk->depth_bias = 0.31;
    double mid[3];
    v3(mid, p[0] + 0.5 * (e[0] - p[0]), p[1] + 0.5 * (e[1] - p[1]), 0);
    add_kp(b, 1, BIRD_KPS[1], BG_BEAK, mid, 0, 0, 0);
    surface(hc, hrx, hry, hrz, 0, -0.05, 1, 0, p, n);
    add_kp(b, 4, BIRD_KPS[4], BG_HEAD, p, n[0], n[1], n[2]); /* crown */
    surface(hc, hrx, hry, hrz, 0, 0.75, 0.65, 0, p, n);
    add_kp(b, 5, BIRD_KPS[5], BG_HEAD, p, n[0], n[1], n[2]); /* forehead */
    surface(hc, hrx, hry, hrz, 0, -0.9, 0.25, 0, p, n);
    add_kp(b, 9, BIRD_KPS[9], BG_HEAD, p, n[0], n[1], n[2]); /* nape */
    surface(hc, hrx, hry, hrz, 0, 0.55, -0.85, 0, p, n);
    add_kp(b, 14, BIRD_KPS[14], BG_HEAD, p, n[0], n[1], n[2]); /* throat */
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1;
        int g = s == 0 ? BG_EYE_L : BG_EYE_R;
        surface(hc, hrx, hry, hrz, 0, 0.5, 0.3, side * 0.81, p, n);
        dhf_solid *rs = ellipsoid(b, g, &ring, p, 0.05 * k, 0.05 * k, 0.02, 0);
        if (rs)
            rs->depth_bias = 0.3;
        double pc[3];
        v3(pc, p[0] + n[0] * 0.01, p[1] + n[1] * 0.01, p[2] + n[2] * 0.01);
        dhf_solid *es = ellipsoid(b, g, &dark, pc, 0.035 * k, 0.035 * k, 0.02, 0);
        if (es)
            es->depth_bias = 0.3;
        add_kp(b, s == 0 ? 6 : 10, BIRD_KPS[s == 0 ? 6 : 10], g, pc, n[0], n[1], n[2]);
    }
}

/* ---- car -------------------------------------------------------------------- */

enum { CG_BODY = 1, CG_CABIN, CG_WHEEL_FL, CG_WHEEL_FR, CG_WHEEL_BL, CG_WHEEL_BR, CG_LIGHT_L, CG_LIGHT_R,
       CG_TAIL_L, CG_TAIL_R };

static void build_car(builder *b, dhf_rng *r)
{
    b->m->pose_family = POSE_ANY;
    double hl = dhf_rng_range(r, 0.9, 1.1), hw = dhf_rng_range(r, 0.38, 0.48);
    double y0 = dhf_rng_range(r, 0.12, 0.18), y1 = dhf_rng_range(r, 0.48, 0.6), y2 = y1 + dhf_rng_range(r, 0.3, 0.45);
    double wr = dhf_rng_range(r, 0.17, 0.22);
    bool hatch = dhf_rng_chance(r, 0.35);
    double cf = hl * dhf_rng_range(r, 0.3, 0.5), cb = hatch ? -hl * 0.96 : -hl * dhf_rng_range(r, 0.5, 0.65);
    double rf = cf - dhf_rng_range(r, 0.25, 0.4), rb = cb + (hatch ? 0.12 : dhf_rng_range(r, 0.15, 0.3));
    double cw = hw - 0.05;
    dhf_rgbf paint_c;
    int kind = dhf_rng_below(r, 5);
    if (kind == 0)
        paint_c = rgb(0.92, 0.92, 0.9);
    else if (kind == 1)
        paint_c = rgb(0.1, 0.1, 0.11);
    else if (kind == 2)
        paint_c = rgb(0.6, 0.62, 0.65);
    else
        paint_c = hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.55, 0.9), dhf_rng_range(r, 0.45, 0.9));
    dhf_paint bodyp = pattern(DHF_PAINT_GRADIENT, paint_c, scale_rgb(paint_c, 1.25), y1 - y0, 0, 0, 1, 0, 0);
    bodyp.origin_y = y0;
    dhf_paint glass = pattern(DHF_PAINT_GRADIENT, rgb(0.12, 0.16, 0.22), rgb(0.45, 0.55, 0.65), 0.5, 0, 0.3, 1, 0, 0);
    glass.origin_y = y1;
    dhf_paint tyre = solid(rgb(0.08, 0.08, 0.08), 0.3f);
    dhf_paint hub = solid(rgb(0.7, 0.72, 0.75), 0.5f);
    dhf_paint light = solid(rgb(1.0, 0.95, 0.75), 0.2f);
    dhf_paint tail = solid(rgb(0.85, 0.08, 0.06), 0.2f);
    dhf_paint grille = solid(rgb(0.15, 0.15, 0.16), 0.f);

    /* wheels (listed first: at equal depth the body wins) */
    static const int wg[4] = {CG_WHEEL_FL, CG_WHEEL_FR, CG_WHEEL_BL, CG_WHEEL_BR};
    for (int i = 0; i < 4; i++) {
        double side = (i % 2 == 0) ? -1 : 1, x = (i < 2 ? 0.64 : -0.64) * hl;
        double c[3], h[3];
        v3(c, x, wr, side * (hw + 0.01));
        dhf_solid *t = ellipsoid(b, wg[i], &tyre, c, wr, wr, 0.06, 0);
        if (t)
            t->depth_bias = 0.01;
        v3(h, x, wr, side * (hw + 0.05));
        dhf_solid *hs = ellipsoid(b, wg[i], &hub, h, wr * 0.5, wr * 0.5, 0.03, 0);
        if (hs)
            hs->depth_bias = 0.02;
        add_kp(b, i, CAR_KPS[i], wg[i], h, 0, 0, side);
    }
    box(b, CG_BODY, &bodyp, -hl, hl, y0, y1, -hw, hw);
    /* cabin: two trapezoid sides, windscreen, rear window, roof */
    double sideL[4][3] = {{cb, y1, -cw}, {cf, y1, -cw}, {rf, y2, -cw}, {rb, y2, -cw}};
    double sideR[4][3] = {{cb, y1, cw}, {cf, y1, cw}, {rf, y2, cw}, {rb, y2, cw}};
    panel(b, CG_CABIN, &bodyp, 4, (const double (*)[3])sideL, 0, 0, -1);
    panel(b, CG_CABIN, &bodyp, 4, (const double (*)[3])sideR, 0, 0, 1);
    /* side windows inset in the same planes, drawn just after them */
    double in = 0.06;
    for (int s = 0; s < 2; s++) {
        double z = (s == 0 ? -1 : 1) * (cw + 0.001);
        double wv[4][3] = {{cb + in * 1.5, y1 + in, z}, {cf - in * 1.5, y1 + in, z},
                           {rf - in * 0.5, y2 - in * 0.6, z}, {rb + in * 0.5, y2 - in * 0.6, z}};
        dhf_solid *w = panel(b, CG_CABIN, &glass, 4, (const double (*)[3])wv, 0, 0, s == 0 ? -1 : 1);
        if (w)
            w->depth_bias = 0.005;
    }
    double ws[4][3] = {{cf, y1, -cw}, {cf, y1, cw}, {rf, y2, cw}, {rf, y2, -cw}};
    double wn = hypot(y2 - y1, cf - rf);
    panel(b, CG_CABIN, &glass, 4, (const double (*)[3])ws, (y2 - y1) / wn, (cf - rf) / wn, 0);
    double rw[4][3] = {{cb, y1, -cw}, {cb, y1, cw}, {rb, y2, cw}, {rb, y2, -cw}};
    double rn = hypot(y2 - y1, rb - cb);
    panel(b, CG_CABIN, &glass, 4, (const double (*)[3])rw, -(y2 - y1) / rn, (rb - cb) / rn, 0);
    double roof[4][3] = {{rb, y2, -cw}, {rf, y2, -cw}, {rf, y2, cw}, {rb, y2, cw}};
    panel(b, CG_CABIN, &bodyp, 4, (const double (*)[3])roof, 0, 1, 0);
    add_kp(b, 8, CAR_KPS[8], CG_CABIN, roof[1], 0, 0, 0);
    add_kp(b, 9, CAR_KPS[9], CG_CABIN, roof[2], 0, 0, 0);
    add_kp(b, 10, CAR_KPS[10], CG_CABIN, roof[0], 0, 0, 0);
    add_kp(b, 11, CAR_KPS[11], CG_CABIN, roof[3], 0, 0, 0);
    /* grille, lights */
    double gy0 = y0 + (y1 - y0) * 0.25, gy1 = y0 + (y1 - y0) * 0.6;
    double gr[4][3] = {{hl + 0.001, gy0, -hw * 0.45}, {hl + 0.001, gy1, -hw * 0.45}, {hl + 0.001, gy1, hw * 0.45},
                       {hl + 0.001, gy0, hw * 0.45}};
    dhf_solid *g = panel(b, CG_BODY, &grille, 4, (const double (*)[3])gr, 1, 0, 0);
    if (g)
        g->depth_bias = 0.005;
    double ly = y0 + (y1 - y0) * 0.62;
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1, c[3];
        v3(c, hl, ly, side * hw * 0.72);
        dhf_solid *l = ellipsoid(b, s == 0 ? CG_LIGHT_L : CG_LIGHT_R, &light, c, 0.03, 0.055, hw * 0.17, 0);
        if (l)
            l->depth_bias = 0.02;
        add_kp(b, 4 + s, CAR_KPS[4 + s], s == 0 ? CG_LIGHT_L : CG_LIGHT_R, c, 1, 0, 0);
        v3(c, -hl, ly, side * hw * 0.75);
        dhf_solid *t = ellipsoid(b, s == 0 ? CG_TAIL_L : CG_TAIL_R, &tail, c, 0.03, 0.05, hw * 0.15, 0);
        if (t)
            t->depth_bias = 0.02;
        add_kp(b, 6 + s, CAR_KPS[6 + s], s == 0 ? CG_TAIL_L : CG_TAIL_R, c, -1, 0, 0);
    }
}

/* ---- chair ------------------------------------------------------------------- */

enum { HG_SEAT = 1, HG_LEG_FL, HG_LEG_FR, HG_LEG_BL, HG_LEG_BR, HG_BACK };

static void build_chair(builder *b, dhf_rng *r)
{
    b->m->pose_family = POSE_ANY;
    double sx = dhf_rng_range(r, 0.38, 0.5), sz = dhf_rng_range(r, 0.38, 0.5);
    double h = dhf_rng_range(r, 0.8, 1.0), th = dhf_rng_range(r, 0.06, 0.1);
    double bh = dhf_rng_range(r, 0.7, 1.1), lr = dhf_rng_range(r, 0.03, 0.05);
    double splay = dhf_rng_range(r, 0.0, 0.08);
    dhf_rgbf wood;
    if (dhf_rng_chance(r, 0.6))
        wood = jitter(pick(r, (const dhf_rgbf[]){{0.55f, 0.35f, 0.18f}, {0.72f, 0.52f, 0.3f}, {0.35f, 0.2f, 0.1f},
                                                  {0.85f, 0.7f, 0.5f}},
                           4),
                      r, 0.1);
    else
        wood = hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.3, 0.8), dhf_rng_range(r, 0.3, 0.9));
    uint32_t seed = (uint32_t)dhf_rng_u64(r);
    dhf_paint frame = dhf_rng_chance(r, 0.5)
                          ? pattern(DHF_PAINT_STRIPES, wood, scale_rgb(wood, 0.85), 0.05, 0.5, 0.2, 1, seed, 0.4f)
                          : solid(wood, 0.5f);
    dhf_paint seat = frame;
    if (dhf_rng_chance(r, 0.5)) {
        dhf_rgbf f = hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.3, 0.8), dhf_rng_range(r, 0.4, 0.9));
        seat = dhf_rng_chance(r, 0.5) ? pattern(DHF_PAINT_CHECKER, f, scale_rgb(f, 0.7), 0.12, 0, 1, 0.3, seed, 0)
                                      : solid(f, 0);
    }
    static const int lg[4] = {HG_LEG_FL, HG_LEG_FR, HG_LEG_BL, HG_LEG_BR};
    for (int i = 0; i < 4; i++) {
        double fx = i < 2 ? 1 : -1, side = (i % 2 == 0) ? -1 : 1;
        double top[3], foot[3];
        v3(top, fx * (sx - lr * 1.5), h - th, side * (sz - lr * 1.5));
        v3(foot, fx * (sx - lr * 1.5 + splay), 0.0, side * (sz - lr * 1.5 + splay));
        tube(b, lg[i], &frame, top, foot, lr, lr * 0.85);
        add_kp(b, 4 + i, CHAIR_KPS[4 + i], lg[i], foot, 0, 0, 0);
    }
    box(b, HG_SEAT, &seat, -sx, sx, h - th, h, -sz, sz);
    add_kp(b, 0, CHAIR_KPS[0], HG_SEAT, (const double[]){sx, h, -sz}, 0, 0, 0);
    add_kp(b, 1, CHAIR_KPS[1], HG_SEAT, (const double[]){sx, h, sz}, 0, 0, 0);
    add_kp(b, 2, CHAIR_KPS[2], HG_SEAT, (const double[]){-sx, h, -sz}, 0, 0, 0);
    add_kp(b, 3, CHAIR_KPS[3], HG_SEAT, (const double[]){-sx, h, sz}, 0, 0, 0);
    /* backrest: two posts and a panel between them */
    double pr = lr * 1.1, bx = -sx + pr;
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1, a[3], e[3];
        v3(a, bx, h, side * (sz - pr));
        v3(e, bx - 0.06, h + bh, side * (sz - pr));
        tube(b, HG_BACK, &frame, a, e, pr, pr);
        add_kp(b, 8 + s, CHAIR_KPS[8 + s], HG_BACK, e, 0, 0, 0);
    }
    double p0 = h + bh * dhf_rng_range(r, 0.35, 0.55), p1 = h + bh * 0.95;
    double t0 = (p0 - h) / bh, t1 = (p1 - h) / bh;
    box(b, HG_BACK, &seat, bx - 0.06 * t1 - 0.03, bx - 0.06 * t0 + 0.03, p0, p1, -(sz - pr), sz - pr);
}

/* ---- bottle (rotationally symmetric: a billboard facing the viewer) ---------- */

enum { OG_BODY = 1, OG_CAP, OG_LABEL };

static void build_bottle(builder *b, dhf_rng *r)
{
    b->m->pose_family = POSE_SYMMETRIC;
    b->m->symmetric = true;
    double bw = dhf_rng_range(r, 0.2, 0.36), ys = dhf_rng_range(r, 0.75, 1.3), sh = dhf_rng_range(r, 0.12, 0.4);
    double nw = dhf_rng_range(r, 0.06, 0.12), nl = dhf_rng_range(r, 0.12, 0.6), ch = dhf_rng_range(r, 0.06, 0.14);
    double yn = ys + sh, yt = yn + nl;
    static const dhf_rgbf glass_colours[] = {{0.15f, 0.45f, 0.2f}, {0.42f, 0.22f, 0.08f}, {0.2f, 0.35f, 0.62f},
                                             {0.62f, 0.7f, 0.72f}, {0.75f, 0.2f, 0.25f}};
    dhf_rgbf gc = jitter(pick(r, glass_colours, N_OF(glass_colours)), r, 0.1);
    dhf_paint glass = pattern(DHF_PAINT_GRADIENT, scale_rgb(gc, 0.65), scale_rgb(gc, 1.3), 2 * bw, 0, 1, 0, 0, 0);
    glass.origin_x = -bw;
    double out[DHF_SHAPE_MAX_VERTS][3];
    int n = 0;
    const int curve = 5;
    v3(out[n++], -bw * 0.92, 0, 0);
    v3(out[n++], bw * 0.92, 0, 0);
    v3(out[n++], bw, 0.05, 0);
    v3(out[n++], bw, ys, 0);
    for (int i = 1; i <= curve; i++) {
        double t = (double)i / (curve + 1), sm = t * t * (3 - 2 * t);
        v3(out[n++], nw + (bw - nw) * (1 - sm), ys + sh * t, 0);
    }
    v3(out[n++], nw, yn, 0);
    v3(out[n++], nw, yt, 0);
    v3(out[n++], -nw, yt, 0);
    v3(out[n++], -nw, yn, 0);
    for (int i = curve; i >= 1; i--) {
        double t = (double)i / (curve + 1), sm = t * t * (3 - 2 * t);
        v3(out[n++], -(nw + (bw - nw) * (1 - sm)), ys + sh * t, 0);
    }
    v3(out[n++], -bw, ys, 0);
    v3(out[n++], -bw, 0.05, 0);
    panel(b, OG_BODY, &glass, n, (const double (*)[3])out, 0, 0, 0);
    /* a highlight down the glass */
    dhf_paint hi = solid(mix(gc, rgb(1, 1, 1), 0.55), 0);
    double hl[4][3] = {{-bw * 0.62, 0.08, 0}, {-bw * 0.45, 0.08, 0}, {-bw * 0.45, ys * 0.95, 0},
                       {-bw * 0.62, ys * 0.95, 0}};
    dhf_solid *hs = panel(b, OG_BODY, &hi, 4, (const double (*)[3])hl, 0, 0, 0);
    if (hs)
        hs->depth_bias = 0.001;
    /* cap */
    dhf_paint capp = solid(hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.2, 0.9), dhf_rng_range(r, 0.3, 0.95)), 0);
    double cw = nw * dhf_rng_range(r, 1.08, 1.25);
    double cap[4][3] = {{-cw, yt - 0.02, 0}, {cw, yt - 0.02, 0}, {cw, yt + ch, 0}, {-cw, yt + ch, 0}};
    dhf_solid *cs = panel(b, OG_CAP, &capp, 4, (const double (*)[3])cap, 0, 0, 0);
    if (cs)
        cs->depth_bias = 0.002;
    /* label: its pattern is offset by a random turn of the bottle */
    double l0 = ys * dhf_rng_range(r, 0.2, 0.35), l1 = ys * dhf_rng_range(r, 0.65, 0.85);
    dhf_rgbf la = hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.0, 0.8), dhf_rng_range(r, 0.7, 1.0));
    dhf_rgbf lb = hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.5, 1.0), dhf_rng_range(r, 0.2, 0.7));
    uint32_t seed = (uint32_t)dhf_rng_u64(r);
    int lk = dhf_rng_below(r, 3);
    dhf_paint label = lk == 0   ? pattern(DHF_PAINT_STRIPES, la, lb, dhf_rng_range(r, 0.08, 0.2), 0.3, 0, 1, seed, 0)
                      : lk == 1 ? pattern(DHF_PAINT_CHECKER, la, lb, dhf_rng_range(r, 0.06, 0.12), 0, 1, 0.2, seed, 0)
                                : pattern(DHF_PAINT_SPOTS, la, lb, 0.12, 0.3, 1, 0, seed, 0);
    label.origin_x = dhf_rng_range(r, -1, 1);
    double lab[4][3] = {{-bw, l0, 0}, {bw, l0, 0}, {bw, l1, 0}, {-bw, l1, 0}};
    dhf_solid *ls = panel(b, OG_LABEL, &label, 4, (const double (*)[3])lab, 0, 0, 0);
    if (ls)
        ls->depth_bias = 0.003;
    add_kp(b, 0, BOTTLE_KPS[0], OG_CAP, cap[3], 0, 0, 0);
    add_kp(b, 1, BOTTLE_KPS[1], OG_CAP, cap[2], 0, 0, 0);
    add_kp(b, 2, BOTTLE_KPS[2], OG_BODY, (const double[]){-nw, yn, 0}, 0, 0, 0);
    add_kp(b, 3, BOTTLE_KPS[3], OG_BODY, (const double[]){nw, yn, 0}, 0, 0, 0);
    add_kp(b, 4, BOTTLE_KPS[4], OG_BODY, (const double[]){-bw, ys, 0}, 0, 0, 0);
    add_kp(b, 5, BOTTLE_KPS[5], OG_BODY, (const double[]){bw, ys, 0}, 0, 0, 0);
    add_kp(b, 6, BOTTLE_KPS[6], OG_BODY, (const double[]){-bw * 0.92, 0, 0}, 0, 0, 0);
    add_kp(b, 7, BOTTLE_KPS[7], OG_BODY, (const double[]){bw * 0.92, 0, 0}, 0, 0, 0);
    add_kp(b, 8, BOTTLE_KPS[8], OG_LABEL, (const double[]){0, 0.5 * (l0 + l1), 0}, 0, 0, 0);
}

/* ---- person (head and shoulders) ----------------------------------------------- */

enum { PG_TORSO = 1, PG_HEAD, PG_HAIR, PG_EYE_L, PG_EYE_R, PG_NOSE, PG_MOUTH, PG_EAR_L, PG_EAR_R };

static void build_person(builder *b, dhf_rng *r)
{
    b->m->pose_family = POSE_FRONT;
    static const dhf_rgbf skins[] = {{0.96f, 0.8f, 0.69f}, {0.88f, 0.67f, 0.5f}, {0.72f, 0.5f, 0.34f},
                                     {0.52f, 0.34f, 0.22f}, {0.36f, 0.23f, 0.15f}};
    static const dhf_rgbf hairs[] = {{0.1f, 0.08f, 0.06f}, {0.35f, 0.2f, 0.1f}, {0.75f, 0.6f, 0.3f},
                                     {0.55f, 0.25f, 0.1f}, {0.7f, 0.7f, 0.7f}};
    dhf_rgbf skin = jitter(pick(r, skins, N_OF(skins)), r, 0.06);
    dhf_paint skinp = solid(skin, 0.55f);
    dhf_paint hairp = solid(jitter(pick(r, hairs, N_OF(hairs)), r, 0.1), 0.5f);
    dhf_rgbf shirt = hsv(dhf_rng_unit(r), dhf_rng_range(r, 0.2, 0.85), dhf_rng_range(r, 0.3, 0.9));
    uint32_t seed = (uint32_t)dhf_rng_u64(r);
    int sk = dhf_rng_below(r, 3);
    dhf_paint shirtp = sk == 0 ? pattern(DHF_PAINT_STRIPES, shirt, scale_rgb(shirt, 0.6), 0.12, 0.4, 0, 1, seed, 0.5f)
                       : sk == 1 ? pattern(DHF_PAINT_CHECKER, shirt, scale_rgb(shirt, 0.7), 0.1, 0, 1, 0, seed, 0.5f)
                                 : solid(shirt, 0.55f);
    dhf_paint white = solid(rgb(0.95, 0.95, 0.93), 0.1f);
    dhf_paint iris = solid(hsv(dhf_rng_range(r, 0.05, 0.6), 0.6, dhf_rng_range(r, 0.15, 0.5)), 0.1f);
    dhf_paint lips = solid(mix(skin, rgb(0.6, 0.15, 0.15), 0.55), 0.3f);
    double p[3], e[3], n[3];

    /* torso with a shoulder bar across its top, a short neck */
    double tw = dhf_rng_range(r, 0.4, 0.5), sy = 0.18, sr = dhf_rng_range(r, 0.15, 0.18);
    double tc[3];
    v3(tc, -0.02, -0.25, 0);
    ellipsoid(b, PG_TORSO, &shirtp, tc, 0.24, 0.45, tw, 0);
    v3(p, 0, sy, -tw);
    v3(e, 0, sy, tw);
    dhf_solid *sb = tube(b, PG_TORSO, &shirtp, p, e, sr, sr);
    if (sb)
        sb->depth_bias = 0.01;
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1;
        v3(p, 0, sy + sr * 0.5, side * (tw + sr * 0.7));
        add_kp(b, 8 + s, PERSON_KPS[8 + s], PG_TORSO, p, 0, 0.5, side * 0.87);
    }
    v3(p, 0, 0.05, 0);
    double hc[3];
    double hrx = dhf_rng_range(r, 0.22, 0.26), hry = dhf_rng_range(r, 0.27, 0.32), hrz = dhf_rng_range(r, 0.19, 0.22);
    v3(hc, 0.03, sy + sr + dhf_rng_range(r, 0.12, 0.2) + hry, 0);
    v3(e, 0.02, hc[1] - hry * 0.5, 0);
    dhf_solid *neck = tube(b, PG_TORSO, &skinp, p, e, 0.09, 0.085);
    if (neck)
        neck->depth_bias = -0.1; /* behind the shoulders: only its upper part shows */
    /* hair behind the head; the face is drawn over it */
    double hh[3], big = dhf_rng_range(r, 1.0, 1.15);
    v3(hh, hc[0] - 0.05, hc[1] + 0.07 - (big - 1.0) * 0.5, 0);
    dhf_solid *h1 = ellipsoid(b, PG_HAIR, &hairp, hh, hrx * 1.08 * big, hry * 0.98 * big, hrz * 1.1 * big, 0);
    if (h1)
        h1->depth_bias = -0.15;
    for (int s = 0; s < 2; s++) { /* ears behind the head outline */
        double side = s == 0 ? -1 : 1, c[3];
        v3(c, hc[0] - 0.02, hc[1] - 0.02, side * (hrz + 0.015));
        dhf_solid *es = ellipsoid(b, s == 0 ? PG_EAR_L : PG_EAR_R, &skinp, c, 0.05, 0.085, 0.03, 0);
        if (es)
            es->depth_bias = -0.05;
        add_kp(b, 5 + s, PERSON_KPS[5 + s], s == 0 ? PG_EAR_L : PG_EAR_R, c, 0, 0, side);
    }
    ellipsoid(b, PG_HEAD, &skinp, hc, hrx, hry, hrz, 0);
    surface(hc, hrx, hry, hrz, 0, 0.45, -0.89, 0, p, n);
    add_kp(b, 7, PERSON_KPS[7], PG_HEAD, p, n[0], n[1], n[2]);
    for (int s = 0; s < 2; s++) {
        double side = s == 0 ? -1 : 1;
        int g = s == 0 ? PG_EYE_L : PG_EYE_R;
        surface(hc, hrx, hry, hrz, 0, 0.85, 0.15, side * 0.52, p, n);
        dhf_solid *w = ellipsoid(b, g, &white, p, 0.02, 0.026, 0.045, 0);
        if (w)
            w->depth_bias = 0.05;
        double ic[3];
        v3(ic, p[0] + n[0] * 0.012, p[1] + n[1] * 0.012, p[2] + n[2] * 0.012);
        dhf_solid *is = ellipsoid(b, g, &iris, ic, 0.018, 0.02, 0.02, 0);
        if (is)
            is->depth_bias = 0.06;
        add_kp(b, s, PERSON_KPS[s], g, ic, n[0], n[1], n[2]);
        double br0[3], br1[3];
        v3(br0, p[0] + 0.01, p[1] + 0.055, p[2] - side * 0.035);
        v3(br1, p[0] - 0.01, p[1] + 0.06, p[2] + side * 0.045);
        dhf_solid *bw = tube(b, g, &hairp, br0, br1, 0.012, 0.009);
        if (bw)
            bw->depth_bias = 0.05;
    }
    double nc[3];
    v3(nc, hc[0] + hrx + 0.02, hc[1] - hry * 0.15, 0);
    dhf_solid *ns = ellipsoid(b, PG_NOSE, &skinp, nc, 0.05, 0.065, 0.04, 0);
    if (ns)
        ns->depth_bias = 0.07;
    add_kp(b, 2, PERSON_KPS[2], PG_NOSE, nc, 1, 0, 0);
    double mc[3], mw = dhf_rng_range(r, 0.06, 0.085);
    surface(hc, hrx, hry, hrz, 0, 0.85, -0.5, 0, mc, n);
    mc[0] += 0.008;
    dhf_solid *ms = ellipsoid(b, PG_MOUTH, &lips, mc, 0.015, 0.022, mw, 0);
    if (ms)
        ms->depth_bias = 0.05;
    v3(p, mc[0] - 0.01, mc[1], -mw * 0.95);
    add_kp(b, 3, PERSON_KPS[3], PG_MOUTH, p, 0.9, 0, -0.4);
    v3(p, mc[0] - 0.01, mc[1], mw * 0.95);
    add_kp(b, 4, PERSON_KPS[4], PG_MOUTH, p, 0.9, 0, 0.4);
}

/* ---- public ------------------------------------------------------------------- */

int dhf_synth_build_model(const char *category, int style, dhf_rng *rng, dhf_synth_model *m)
{
    const category_def *c = find_category(category);
    if (!c)
        return dhf_err_set("synth: unknown category '%s'", category);
    if (style >= 0 && strcmp(category, "bird") != 0)
        return dhf_err_set("synth: class styles exist only for 'bird' (got '%s')", category);
    memset(m, 0, sizeof *m);
    snprintf(m->category, sizeof m->category, "%s", category);
    builder b = {m, false};
    if (strcmp(category, "bird") == 0)
        build_bird(&b, style, rng);
    else if (strcmp(category, "car") == 0)
        build_car(&b, rng);
    else if (strcmp(category, "chair") == 0)
        build_chair(&b, rng);
    else if (strcmp(category, "bottle") == 0)
        build_bottle(&b, rng);
    else if (strcmp(category, "person") == 0)
        build_person(&b, rng);
    else
        build_quadruped(&b, category, rng);
    if (b.full)
        return dhf_err_set("synth: template '%s' exceeds %d solids or %d keypoints", category, DHF_SYNTH_MAX_SOLIDS,
                           DHF_SYNTH_MAX_KPS);
    if (m->n_kps != c->n_kps)
        return dhf_err_set("synth: template '%s' defines %d keypoints, its name list has %d", category, m->n_kps,
                           c->n_kps);
    for (int i = 0; i < m->n_kps; i++)
        if (!m->kps[i].name)
            return dhf_err_set("synth: template '%s' leaves keypoint %d undefined", category, i);
    return 0;
}

void dhf_synth_sample_pose(const dhf_synth_model *m, dhf_rng *rng, dhf_synth_pose *pose)
{
    switch (m->pose_family) {
    case POSE_SIDE: {
        /* mostly side views, facing either way, up to 65 deg off profile */
        double off = dhf_rng_range(rng, -65, 65) * DEG;
        pose->yaw = dhf_rng_chance(rng, 0.5) ? off : M_PI + off;
        pose->pitch = dhf_rng_range(rng, -5, 20) * DEG;
        break;
    }
    case POSE_ANY:
        pose->yaw = dhf_rng_range(rng, -M_PI, M_PI);
        pose->pitch = dhf_rng_range(rng, 8, 30) * DEG;
        break;
    case POSE_FRONT:
        pose->yaw = -M_PI / 2 + dhf_rng_range(rng, -55, 55) * DEG;
        pose->pitch = dhf_rng_range(rng, -10, 12) * DEG;
        break;
    default: /* symmetric: the view only tilts */
        pose->yaw = 0;
        pose->pitch = dhf_rng_range(rng, -10, 10) * DEG;
        break;
    }
}

double dhf_synth_azimuth_deg(const dhf_synth_model *m, const dhf_synth_pose *pose)
{
    if (m->symmetric)
        return 0;
    /* facing direction (1,0,0) after Ry(yaw): (cos yaw, 0, -sin yaw) */
    return atan2(cos(pose->yaw), -sin(pose->yaw)) / DEG;
}

static void rotation(const dhf_synth_pose *pose, bool symmetric, double R[9])
{
    double yaw = symmetric ? 0 : pose->yaw;
    double cy = cos(yaw), sy = sin(yaw), cp = cos(pose->pitch), sp = sin(pose->pitch);
    /* Rx(pitch) * Ry(yaw) */
    R[0] = cy;       R[1] = 0;   R[2] = sy;
    R[3] = sp * sy;  R[4] = cp;  R[5] = -sp * cy;
    R[6] = -cp * sy; R[7] = sp;  R[8] = cp * cy;
}

static void rot3(const double R[9], const double p[3], double o[3])
{
    o[0] = R[0] * p[0] + R[1] * p[1] + R[2] * p[2];
    o[1] = R[3] * p[0] + R[4] * p[1] + R[5] * p[2];
    o[2] = R[6] * p[0] + R[7] * p[1] + R[8] * p[2];
}

int dhf_synth_project(const dhf_synth_model *m, const dhf_synth_pose *pose, dhf_shape *shapes, int *n_shapes,
                      dhf_synth_proj_kp *kps)
{
    double R[9];
    rotation(pose, m->symmetric, R);
    const double L[3] = {-0.45, 0.55, 0.70};
    double depth[DHF_SYNTH_MAX_SOLIDS];
    int n = 0;
    for (int i = 0; i < m->n_solids; i++) {
        const dhf_solid *s = &m->solids[i];
        dhf_shape *o = &shapes[n];
        memset(o, 0, sizeof *o);
        o->paint = s->paint;
        o->group = s->group;
        double d;
        if (s->kind == DHF_SOLID_ELLIPSOID) {
            /* outline of {c + M u : |u| <= 1} is the 2x2 block of M M^T */
            double cr = cos(s->roll), sr = sin(s->roll);
            double Ml[9] = {cr * s->r[0], -sr * s->r[1], 0, sr * s->r[0], cr * s->r[1], 0, 0, 0, s->r[2]};
            double M[9];
            for (int a = 0; a < 3; a++)
                for (int bb = 0; bb < 3; bb++)
                    M[a * 3 + bb] = R[a * 3] * Ml[bb] + R[a * 3 + 1] * Ml[3 + bb] + R[a * 3 + 2] * Ml[6 + bb];
            double sxx = M[0] * M[0] + M[1] * M[1] + M[2] * M[2];
            double sxy = M[0] * M[3] + M[1] * M[4] + M[2] * M[5];
            double syy = M[3] * M[3] + M[4] * M[4] + M[5] * M[5];
            double det = sxx * syy - sxy * sxy;
            if (!(det > 0))
                return dhf_err_set("synth: degenerate ellipsoid %d in template '%s'", i, m->category);
            double c[3];
            rot3(R, s->c, c);
            o->kind = DHF_SHAPE_ELLIPSE;
            o->cx = c[0];
            o->cy = c[1];
            o->qxx = syy / det;
            o->qxy = -sxy / det;
            o->qyy = sxx / det;
            d = c[2];
        } else if (s->kind == DHF_SOLID_TUBE) {
            double a[3], b[3];
            rot3(R, s->a, a);
            rot3(R, s->b, b);
            o->kind = DHF_SHAPE_CAPSULE;
            o->ax = a[0];
            o->ay = a[1];
            o->bx = b[0];
            o->by = b[1];
            o->ra = s->ra;
            o->rb = s->rb;
            d = 0.5 * (a[2] + b[2]);
        } else {
            double nrm[3];
            bool sided = s->normal[0] != 0 || s->normal[1] != 0 || s->normal[2] != 0;
            if (sided) {
                rot3(R, s->normal, nrm);
                if (nrm[2] <= 1e-6)
                    continue; /* back face */
                double lam = fmax(0.0, nrm[0] * L[0] + nrm[1] * L[1] + nrm[2] * L[2]);
                double f = 0.62 + 0.48 * lam;
                o->paint.a = scale_rgb(o->paint.a, f);
                o->paint.b = scale_rgb(o->paint.b, f);
            }
            o->kind = DHF_SHAPE_POLYGON;
            o->n = s->n;
            d = 0;
            for (int v = 0; v < s->n; v++) {
                double q[3];
                rot3(R, s->v[v], q);
                o->vx[v] = q[0];
                o->vy[v] = q[1];
                d += q[2];
            }
            d /= s->n;
        }
        if (dhf_shape_finish(o) != 0)
            return dhf_err_wrap("template '%s' solid %d", m->category, i);
        /* a billboard's parts are coplanar: only the template's layering counts */
        depth[n] = (m->symmetric ? 0 : d) + s->depth_bias;
        n++;
    }
    /* stable insertion sort, far (small depth) first */
    for (int i = 1; i < n; i++) {
        dhf_shape tmp = shapes[i];
        double dt = depth[i];
        int j = i - 1;
        while (j >= 0 && depth[j] > dt) {
            shapes[j + 1] = shapes[j];
            depth[j + 1] = depth[j];
            j--;
        }
        shapes[j + 1] = tmp;
        depth[j + 1] = dt;
    }
    *n_shapes = n;
    for (int k = 0; k < m->n_kps; k++) {
        const dhf_synth_keypoint *kp = &m->kps[k];
        double q[3];
        rot3(R, kp->p, q);
        kps[k].x = q[0];
        kps[k].y = q[1];
        kps[k].depth = q[2];
        kps[k].group = kp->group;
        double nl = sqrt(kp->normal[0] * kp->normal[0] + kp->normal[1] * kp->normal[1] + kp->normal[2] * kp->normal[2]);
        kps[k].faces_away = false;
        if (nl > 0) {
            double nn[3];
            rot3(R, kp->normal, nn);
            kps[k].faces_away = nn[2] / nl < -0.12;
        }
    }
    return 0;
}
