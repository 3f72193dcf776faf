/* match.h — keypoint transfer between two descriptor maps: the paper's
 * nearest-neighbour procedure (bilinear resize of both maps to load_size²,
 * source descriptor at the rounded source keypoint, cosine similarity against
 * every target pixel, hard argmax, map back to the target's original pixels),
 * soft-argmax variants, mutual-nearest checks, and the geometry ("frame") that
 * maps original pixels to load-space pixels under the stretch or pad policy.
 *
 * Coordinates: (x, y) with pixel centres at integers, in both frames (the paper's
 * convention: load pixel index i is coordinate i). Descriptor maps are plain
 * float arrays C × h × w, row-major, covering the whole load frame: the stretched
 * image (stretch) or the padded square (pad). */
#ifndef DHF_EVAL_MATCH_H
#define DHF_EVAL_MATCH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { DHF_RESIZE_STRETCH = 0, DHF_RESIZE_PAD = 1 } dhf_resize_policy;
typedef enum {
    DHF_MATCH_ARGMAX = 0,            /* the paper */
    DHF_MATCH_SOFT_ARGMAX = 1,       /* softmax(cos / T)-weighted mean over all pixels */
    DHF_MATCH_WINDOW_SOFT_ARGMAX = 2 /* same, inside a (2r+1)² window around the argmax */
} dhf_matcher_kind;

/* "stretch"/"pad", "argmax"/"soft_argmax"/"window_soft_argmax". Return -1 and set
 * the error (naming `what`) for an unknown name. */
int dhf_resize_policy_parse(const char *s, dhf_resize_policy *out);
int dhf_matcher_parse(const char *s, dhf_matcher_kind *out);
const char *dhf_resize_policy_name(dhf_resize_policy p);
const char *dhf_matcher_name(dhf_matcher_kind m);

/* Original image (W × H) → load frame (L × L). The image is first placed in a
 * frame_w × frame_h canvas at integer offset (off_x, off_y) — the image itself
 * for stretch; a max(W,H)² square with the image centred (offsets floored) for
 * pad — and the canvas is stretched to L × L:
 *     load_x = (x + off_x) * (L / frame_w),   x = load_x * (frame_w / L) - off_x
 * With off = 0 these are the paper's rescale_points (scale computed first). */
typedef struct {
    int width, height;       /* original image */
    int load_size;           /* L */
    int frame_w, frame_h;    /* canvas before the stretch */
    int off_x, off_y;        /* image origin in the canvas */
    double to_load_x, to_load_y;   /* L / frame_w, L / frame_h */
    double to_orig_x, to_orig_y;   /* frame_w / L, frame_h / L */
} dhf_frame;

int dhf_frame_init(dhf_frame *f, int width, int height, int load_size, dhf_resize_policy policy);
void dhf_frame_to_load(const dhf_frame *f, double x, double y, double *lx, double *ly);
void dhf_frame_to_orig(const dhf_frame *f, double lx, double ly, double *x, double *y);
/* True when load pixel (i, j) = (column, row) lies on the image, not on padding
 * (its centre maps inside [-0.5, W-0.5) × [-0.5, H-0.5)). Always true for stretch. */
bool dhf_frame_on_image(const dhf_frame *f, int col, int row);

/* Bilinear resize of C × h × w to C × oh × ow with PyTorch's
 * interpolate(mode="bilinear", align_corners=False) arithmetic (float32):
 * src = (dst + 0.5) * in/out - 0.5 clamped at 0, i1 = min(i0 + 1, in - 1). */
void dhf_map_resize_bilinear(const float *in, int c, int h, int w, float *out, int oh, int ow);
/* One output pixel (col, row) of that resize, all C channels, into out[C]. */
void dhf_map_resize_bilinear_at(const float *in, int c, int h, int w, int oh, int ow,
                            int col, int row, float *out);

/* Rounds a load-space coordinate to a pixel index like the paper's
 * points_to_idxs: clip to [0, L-1], then round half to even (np.round). */
int dhf_load_index(double v, int load_size);

typedef struct {
    int load_size;               /* L (paper: 224) */
    dhf_resize_policy resize;
    dhf_matcher_kind matcher;
    double temperature;          /* soft-argmax: weights exp((cos - max) / T); > 0 */
    int window_radius;           /* window soft-argmax: r >= 0 */
    bool mutual;                 /* also run the reverse search (visualisation filter) */
    int mutual_radius;           /* mutual iff reverse NN within this many load pixels (Chebyshev) */
} dhf_match_opts;

void dhf_match_opts_default(dhf_match_opts *o);   /* L 224, stretch, argmax, T 0.04, r 3 */

/* A descriptor map and the original size of the image it describes. */
typedef struct {
    const float *data;       /* c × h × w */
    int c, h, w;
    int width, height;       /* original image W × H */
} dhf_desc_map;

typedef struct {
    double x, y;             /* prediction, target ORIGINAL pixels */
    double load_x, load_y;   /* prediction, target load frame */
    int src_col, src_row;    /* source load pixel whose descriptor was used */
    double score;            /* cosine similarity at the hard argmax */
    int mutual;              /* 1/0 when opts.mutual, else -1 */
} dhf_match_result;

/* Transfers n source keypoints (src_xy: n × (x, y), source original pixels)
 * into the target. Hard argmax ties go to the first pixel in row-major order
 * (torch.argmax's rule). Zero-norm target pixels never win unless every pixel
 * is zero-norm; in pad mode padding pixels are never candidates. */
int dhf_match_points(const dhf_match_opts *o, const dhf_desc_map *src, const dhf_desc_map *trg,
                     const double *src_xy, int n, dhf_match_result *out);

#endif
