/* synth_render.h — the procedural rasteriser behind `dhf synth`: 2-D shapes
 * (ellipses, polygons, tapered capsules) with paints (solid, gradient, stripes,
 * checker, spots, value noise, rounded shading), a view that maps the object's
 * scene plane into the image (affine pose, mild perspective, smooth non-rigid
 * warp), a procedural background, occluders drawn over the object, and
 * supersampled anti-aliasing.
 *
 * Coordinate conventions: image coordinates have pixel CENTRES at integers
 * (pixel (i, j) covers [i-0.5, i+0.5) x [j-0.5, j+0.5)), x right, y down, so an
 * annotation rounded to the nearest integer names the pixel that contains it.
 * The scene plane is the object's projected side view: x right, y UP, in model
 * units. Rendering maps every image sample back to the scene (image -> scene is
 * closed form); keypoints go forward (scene -> image), which inverts the smooth
 * warp by a contracting fixed-point iteration, so annotated positions are exact
 * for the rendered geometry, not estimated from pixels. */
#ifndef DHF_EVAL_SYNTH_RENDER_H
#define DHF_EVAL_SYNTH_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/image.h"

#define DHF_SHAPE_MAX_VERTS 24
#define DHF_VIEW_MAX_RBF 6

typedef struct {
    float r, g, b; /* 0..1 */
} dhf_rgbf;

typedef enum {
    DHF_PAINT_SOLID = 0,
    DHF_PAINT_GRADIENT, /* a -> b along dir over `scale` units from origin */
    DHF_PAINT_STRIPES,  /* b where frac((p - origin).dir / scale) < fill */
    DHF_PAINT_CHECKER,  /* squares of side `scale`, axes rotated to dir */
    DHF_PAINT_SPOTS,    /* jittered discs of colour b, one per cell of side `scale` */
    DHF_PAINT_NOISE,    /* smooth value noise mixing a and b, cell `scale` */
} dhf_paint_kind;

typedef struct {
    dhf_paint_kind kind;
    dhf_rgbf a, b;
    double dir_x, dir_y;       /* unit vector (normalised by dhf_shape_finish) */
    double origin_x, origin_y; /* pattern origin */
    double scale;              /* > 0 */
    double fill;               /* stripes duty cycle, spot radius / cell (0..0.5) */
    uint32_t seed;             /* spots, noise */
    float shade;               /* 0..1: Lambert shading of ellipses/capsules as if rounded */
} dhf_paint;

typedef enum {
    DHF_SHAPE_ELLIPSE = 0, /* (p - c)^T [qxx qxy; qxy qyy] (p - c) <= 1 */
    DHF_SHAPE_POLYGON,     /* even-odd fill of n vertices */
    DHF_SHAPE_CAPSULE,     /* segment a-b swept by a radius going ra -> rb */
} dhf_shape_kind;

typedef struct {
    dhf_shape_kind kind;
    double cx, cy, qxx, qxy, qyy;
    int n;
    double vx[DHF_SHAPE_MAX_VERTS], vy[DHF_SHAPE_MAX_VERTS];
    double ax, ay, bx, by, ra, rb;
    double bbox[4]; /* min x, min y, max x, max y: set by dhf_shape_finish */
    dhf_paint paint;
    int group; /* keypoint owner id: shapes of one group never hide its keypoints */
} dhf_shape;

/* Fills an ellipse from centre, radii and rotation (radians, counter-clockwise
 * in a y-up frame). Keeps the paint and group already in *s. */
void dhf_shape_set_ellipse(dhf_shape *s, double cx, double cy, double rx, double ry, double angle);
/* Computes the bounding box and normalises the paint direction. Call after
 * filling the geometry; returns -1 (message set) on degenerate geometry. */
int dhf_shape_finish(dhf_shape *s);
/* Inside test. *rim (nullable) gets 0 at the centre line .. 1 at the outline
 * (ellipse, capsule; 0 for polygons); nx, ny (nullable) a 2-D outward normal
 * estimate used for shading. */
bool dhf_shape_contains(const dhf_shape *s, double x, double y, double *rim, double *nx, double *ny);
/* Colour of the paint at a point (frame of the shape). */
dhf_rgbf dhf_paint_eval(const dhf_paint *p, double x, double y);

/* Scene -> image: image = warp^-1(persp(A * scene)).
 *   A: affine, pre = (A[0] x + A[1] y + A[2], A[3] x + A[4] y + A[5]);
 *   persp: n = (pre - c) / S, n' = n / (1 + g.n), out = c + S n' (keeps c fixed,
 *          local scale 1 + g.n, so |g| S-normalised < 0.2 is "mild");
 *   warp (image -> pre-warp): y + sum_k d_k exp(-|y - c_k|^2 / (2 sigma^2)),
 *          a smooth thin-plate-like bend; it must be a contraction
 *          (sum |d_k| / sigma < 1.6) so that keypoints can be mapped forward. */
typedef struct {
    double A[6], Ainv[6];
    double pc_x, pc_y, p_scale, g_x, g_y;
    int n_rbf;
    double rbf_x[DHF_VIEW_MAX_RBF], rbf_y[DHF_VIEW_MAX_RBF];
    double rbf_dx[DHF_VIEW_MAX_RBF], rbf_dy[DHF_VIEW_MAX_RBF];
    double rbf_sigma;
} dhf_view;

/* Validates and derives the inverses. Fills nothing else; set A, the
 * perspective and the RBF fields first. */
int dhf_view_prepare(dhf_view *v);
void dhf_view_image_to_scene(const dhf_view *v, double u, double w, double *x, double *y);
void dhf_view_scene_to_image(const dhf_view *v, double x, double y, double *u, double *w);

/* Background, evaluated in image coordinates: `upper` everywhere, or `upper`
 * above and `lower` below a horizon line through (hx, hy) with normal
 * (hnx, hny) when has_horizon; plus per-pixel grain (uniform +-grain). */
typedef struct {
    dhf_paint upper, lower;
    bool has_horizon;
    double hx, hy, hnx, hny;
    float grain;
    uint32_t seed;
} dhf_background;

typedef struct {
    const dhf_background *bg;
    const dhf_shape *object; /* scene frame, painter's order: later shapes on top */
    int n_object;
    const dhf_view *view;
    const dhf_shape *occluders; /* image frame, drawn over the object */
    int n_occluders;
    int samples; /* per axis: samples^2 per pixel, 1..8 */
} dhf_scene;

/* Renders into an allocated img (its width/height are the canvas). When not
 * NULL, object_cov (width*height) receives the fraction of each pixel covered by
 * the object and hidden_cov the fraction covered by the object AND hidden by an
 * occluder. */
int dhf_render_scene(const dhf_scene *sc, dhf_image *img, float *object_cov, float *hidden_cov);

/* Index of the topmost object shape containing scene point (x, y), or -1. */
int dhf_scene_top_shape(const dhf_scene *sc, double x, double y);

#endif
