/* synth_shapes.h — the object categories of `dhf synth`: part-based 3-D
 * templates (ellipsoids, tapered tubes, planar panels) with 6..15 NAMED semantic
 * keypoints each, sampled with per-instance proportions, colours and textures,
 * and their orthographic projection to scene-plane shapes under a pose.
 *
 * Model frame: x forward (the way the object faces), y up, z to the object's
 * RIGHT side, so a "left ..." keypoint has z < 0. Keypoint ids are semantic
 * and never swap: an object seen facing left is rendered by rotating the 3-D
 * template (yaw), not by flipping the picture, so its right eye stays "right
 * eye" and is hidden when it is on the far side, as in SPair-71k where ids are
 * semantic. Rotationally symmetric objects (bottle) have viewer-relative
 * names ("neck left" = the neck's outline on the viewer's left).
 *
 * Projection: rotate by R = Rx(pitch) * Ry(yaw) (viewer on +z, y up), drop z.
 * Ellipsoids project to exact outline ellipses, tubes to tapered capsules,
 * panels to polygons (back-facing panels with a normal are culled). Shapes are
 * sorted far to near by their centre depth (painter's order). */
#ifndef DHF_SYNTH_SHAPES_H
#define DHF_SYNTH_SHAPES_H

#include <stdbool.h>
#include <stddef.h>

#include "synth/synth_render.h"
#include "synth/synth_rng.h"

#define DHF_SYNTH_MAX_KPS 16
#define DHF_SYNTH_MAX_SOLIDS 64
#define DHF_SYNTH_NAME_MAX 32

typedef enum {
    DHF_SOLID_ELLIPSOID = 0,
    DHF_SOLID_TUBE,
    DHF_SOLID_PANEL,
} dhf_solid_kind;

typedef struct {
    dhf_solid_kind kind;
    double c[3], r[3]; /* ellipsoid centre and semi-axes (own frame) */
    double roll;       /* ellipsoid: rotation about z (tilt in the side view), radians */
    double a[3], b[3], ra, rb;                /* tube: from a (radius ra) to b (radius rb) */
    int n;                                    /* panel: planar polygon ... */
    double v[DHF_SHAPE_MAX_VERTS][3];         /* ... vertices */
    double normal[3];                         /* panel outward normal; zero = two-sided */
    double depth_bias;                        /* added to the painter's sort depth */
    dhf_paint paint;                          /* in scene-plane coordinates */
    int group;                                /* keypoint owner group */
} dhf_solid;

typedef struct {
    const char *name; /* static string */
    double p[3];
    int group;        /* solids of this group carry the keypoint */
    double normal[3]; /* outward surface normal; zero = no facing test (tips, corners) */
} dhf_synth_keypoint;

typedef struct {
    char category[DHF_SYNTH_NAME_MAX];
    bool symmetric; /* rotationally symmetric about y: no yaw, pose "Unspecified" */
    int pose_family;
    int n_solids;
    dhf_solid solids[DHF_SYNTH_MAX_SOLIDS];
    int n_kps;
    dhf_synth_keypoint kps[DHF_SYNTH_MAX_KPS];
} dhf_synth_model;

typedef struct {
    double yaw, pitch; /* radians; yaw 0 = facing image right, -pi/2 = facing the viewer */
} dhf_synth_pose;

typedef struct {
    double x, y;      /* scene plane (y up) */
    double depth;     /* toward the viewer */
    int group;
    bool faces_away;  /* its surface normal points away from the viewer */
} dhf_synth_proj_kp;

/* Every category `dhf synth` can draw, alphabetical; and the default subset. */
const char *const *dhf_synth_categories(int *n);
const char *const *dhf_synth_default_categories(int *n);
bool dhf_synth_category_known(const char *category);
/* The keypoint names of a category, in id order (id = index). -1 if unknown. */
int dhf_synth_keypoint_names(const char *category, const char *names[DHF_SYNTH_MAX_KPS], int *n);

/* Builds one instance. style < 0: proportions and colours drawn freely (large
 * intra-class variation, SPair-like); style >= 0 (bird only): the fixed look of
 * bird class `style` (CUB-like fine-grained classes) with small jitter. */
int dhf_synth_build_model(const char *category, int style, dhf_rng *rng, dhf_synth_model *m);
/* Class names for bird styles: a few named looks, then "Synthetic_Bird_<k>". */
void dhf_synth_bird_class_name(int style, char *buf, size_t n);

void dhf_synth_sample_pose(const dhf_synth_model *m, dhf_rng *rng, dhf_synth_pose *pose);

/* Projects the model: shapes (capacity DHF_SYNTH_MAX_SOLIDS) in painter's
 * order, kps[n_kps] in the scene plane. */
int dhf_synth_project(const dhf_synth_model *m, const dhf_synth_pose *pose, dhf_shape *shapes, int *n_shapes,
                      dhf_synth_proj_kp *kps);

/* Where the object faces relative to the viewer: azimuth in degrees, 0 =
 * toward the viewer, +90 = facing image right, 180 = away, -90 = left. */
double dhf_synth_azimuth_deg(const dhf_synth_model *m, const dhf_synth_pose *pose);

#endif
