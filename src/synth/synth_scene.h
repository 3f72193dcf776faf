/* synth_scene.h — one synthetic picture with its annotation: sample the canvas
 * size, the object's pose and placement (scale, in-plane rotation, mild
 * perspective, smooth warp, possible truncation at the border), a background
 * and occluders; render; then derive what an annotator would record: keypoint
 * positions, their visibility (outside the image, self-occluded, or hidden by
 * an occluder), the bounding box, pose label and azimuth bin, truncated and
 * occluded flags. Shared by the SPair-71k and CUB writers. */
#ifndef DHF_SYNTH_SCENE_H
#define DHF_SYNTH_SCENE_H

#include <stdint.h>

#include "core/image.h"
#include "synth/synth_shapes.h"

enum {
    DHF_KP_VISIBLE = 0,
    DHF_KP_OUTSIDE = 1,  /* projected outside the canvas (truncation) */
    DHF_KP_SELF = 2,     /* hidden by another part of the object, or facing away */
    DHF_KP_OCCLUDER = 3, /* under an occluder */
};

typedef struct {
    int min_size, max_size; /* canvas sides in pixels (each drawn independently, never square) */
    double p_truncate;      /* probability the object is pushed over a border */
    double p_occlude;       /* probability of occluders over the object */
    int samples;            /* supersampling per axis */
} dhf_synth_scene_opts;

void dhf_synth_scene_defaults(dhf_synth_scene_opts *o);

typedef struct {
    int width, height;
    int n_kps;
    double kp[DHF_SYNTH_MAX_KPS][2]; /* exact image position (pixel centres at integers), even when not visible */
    int kp_state[DHF_SYNTH_MAX_KPS]; /* DHF_KP_* */
    int bbox[4];                     /* x1, y1, x2, y2 inclusive pixels of the object's silhouette */
    double azimuth_deg;              /* 0 facing the viewer, +90 facing right */
    int azimuth_id;                  /* 0..7, 45-degree bins centred on 0 */
    const char *pose;                /* "Frontal" | "Left" | "Rear" | "Right" | "Unspecified" */
    int truncated, occluded;         /* VOC-style image flags */
    double object_pixels;            /* silhouette area in pixels */
    double yaw_deg, pitch_deg, roll_deg, scale_px; /* sampled pose, for the record */
} dhf_synth_instance;

/* Renders one instance of `category` (style as in dhf_synth_build_model) from
 * `seed` into img (allocated here; free with dhf_image_free). Redraws with a
 * derived seed when a draw leaves fewer than 2 visible keypoints, so every
 * picture is usable. */
int dhf_synth_render_instance(const char *category, int style, uint64_t seed, const dhf_synth_scene_opts *o,
                              dhf_image *img, dhf_synth_instance *inst);

#endif
