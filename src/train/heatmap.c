/* heatmap.c — owns the mixing-weight heatmap of heatmap.h: column labels in the
 * paper's convention, the layout, one cairo drawing function rendered to PNG and SVG
 * in memory, the CSV, and the atomic writes of all three. */
#include "train/heatmap.h"

#include "core/error.h"
#include "core/fsutil.h"
#include "core/safetensors.h"
#include "train/checkpoint.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "DejaVu Sans"

/* viridis sampled at 11 evenly spaced points (matplotlib's map, as R's
 * viridis(11) lists it); linear interpolation between them is what the colour bar's
 * cairo gradient does too, so cells and bar agree exactly. */
static const unsigned char viridis_stops[11][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x25, 0x76}, {0x41, 0x44, 0x87}, {0x35, 0x60, 0x8D},
    {0x2A, 0x78, 0x8E}, {0x21, 0x90, 0x8C}, {0x22, 0xA8, 0x84}, {0x43, 0xBF, 0x71},
    {0x7A, 0xD1, 0x51}, {0xBB, 0xDF, 0x27}, {0xFD, 0xE7, 0x25},
};

static void viridis(double t, double rgb[3])
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double x = t * 10.0;
    int i = (int)x;
    if (i >= 10)
        i = 9;
    double f = x - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = ((1 - f) * viridis_stops[i][k] + f * viridis_stops[i + 1][k]) / 255.0;
}

/* ------------------------------------------------------------------------ */
/* Labels, softmax                                                            */
/* ------------------------------------------------------------------------ */

int dhf_heatmap_column_labels(const int64_t *save_timestep, int num_steps,
                              const char *diffusion_mode, bool flip_timesteps, int64_t *labels)
{
    if (!save_timestep || !labels || num_steps < 1 || num_steps > DHF_HEATMAP_MAX_STEPS)
        return dhf_err_set("heatmap: %d saved timesteps (expected 1..%d)", num_steps,
                           DHF_HEATMAP_MAX_STEPS);
    bool inversion;
    if (diffusion_mode && strcmp(diffusion_mode, "inversion") == 0)
        inversion = true;
    else if (diffusion_mode && strcmp(diffusion_mode, "generation") == 0)
        inversion = false;
    else
        return dhf_err_set("heatmap: diffusion_mode '%s' (expected inversion or generation)",
                           diffusion_mode ? diffusion_mode : "(null)");
    /* Two reversals cancel: flip (load_models) then inversion (log_aggregation_network). */
    bool reverse = inversion != flip_timesteps;
    for (int s = 0; s < num_steps; s++)
        labels[s] = save_timestep[reverse ? num_steps - 1 - s : s];
    return 0;
}

int dhf_heatmap_softmax(const float *raw, int n, float *out)
{
    if (!raw || !out || n < 1)
        return dhf_err_set("heatmap: softmax of %d values", n);
    double m = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(raw[i]))
            return dhf_err_set("heatmap: mixing weight %d is %g (not finite)", i, (double)raw[i]);
        if (raw[i] > m)
            m = raw[i];
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)raw[i] - m);
    for (int i = 0; i < n; i++)
        out[i] = (float)(exp((double)raw[i] - m) / sum);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Layout                                                                     */
/* ------------------------------------------------------------------------ */

enum {
    PAD = 18,
    TITLE_H = 30,         /* title line incl. gap below */
    SUBTITLE_H = 20,
    GAP_TOP = 12,
    YTITLE_W = 22,        /* rotated "Layer" */
    ROWLAB_W = 30,        /* "1".."64" */
    CELL_H = 30,
    MIN_CELL_W = 62,
    MIN_GRID_W = 420,     /* a one-step heatmap still has room for its title */
    BAR_GAP = 20,
    BAR_W = 16,
    BAR_LAB_W = 64,
    COLLAB_H = 22,
    XTITLE_H = 24,
};

typedef struct {
    int width, height;
    double grid_x, grid_y, cell_w, cell_h;
    double bar_x;
} layout;

static double cell_width(int num_steps)
{
    double w = MIN_CELL_W;
    if (num_steps * w < MIN_GRID_W)
        w = ceil((double)MIN_GRID_W / num_steps);
    return w;
}

static layout make_layout(int num_steps, int num_layers)
{
    layout lay;
    lay.cell_w = cell_width(num_steps);
    lay.cell_h = CELL_H;
    lay.grid_x = PAD + YTITLE_W + ROWLAB_W;
    lay.grid_y = PAD + TITLE_H + SUBTITLE_H + GAP_TOP;
    lay.bar_x = lay.grid_x + num_steps * lay.cell_w + BAR_GAP;
    lay.width = (int)(lay.bar_x + BAR_W + BAR_LAB_W + PAD);
    lay.height = (int)(lay.grid_y + num_layers * lay.cell_h + COLLAB_H + XTITLE_H + PAD);
    return lay;
}

void dhf_heatmap_canvas_size(int num_steps, int num_layers, int *width, int *height)
{
    layout lay = make_layout(num_steps < 1 ? 1 : num_steps, num_layers < 1 ? 1 : num_layers);
    if (width)
        *width = lay.width;
    if (height)
        *height = lay.height;
}

/* Tick step near range/4 from {1, 2, 2.5, 5} x 10^k, and the decimals it needs. */
static double nice_step(double range, int *decimals)
{
    double raw = range / 4.0;
    double p = pow(10.0, floor(log10(raw)));
    double m = raw / p, step;
    int extra = 0;
    if (m < 1.5)
        step = 1;
    else if (m < 2.25)
        step = 2;
    else if (m < 3.5) {
        step = 2.5;
        extra = 1;
    } else if (m < 7.5)
        step = 5;
    else
        step = 10;
    step *= p;
    int d = (int)-floor(log10(step) + 1e-9) + extra;
    *decimals = d < 0 ? 0 : d;
    return step;
}

/* ------------------------------------------------------------------------ */
/* Drawing                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    const float *w;
    int S, L;
    const int64_t *labels;
    const char *title, *subtitle;
    double vmin, vmax;    /* colour scale */
    int decimals;         /* cell values */
} spec;

static void set_font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* Text anchored at (x, y): ax 0 left, 0.5 centre, 1 right; y is the vertical
 * centre of the text's ink box for digits (ascent-based, so rows line up). */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ax)
{
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &te);
    cairo_font_extents(cr, &fe);
    double cap = fe.ascent * 0.72;    /* digit height of DejaVu Sans relative to ascent */
    cairo_move_to(cr, x - ax * te.x_advance, y + cap / 2);
    cairo_show_text(cr, s);
}

/* Largest font size <= size at which s fits in max_w (never below min_size). */
static double fit_font(cairo_t *cr, const char *s, double size, double min_size, double max_w,
                       bool bold)
{
    cairo_text_extents_t te;
    for (; size > min_size; size -= 0.5) {
        set_font(cr, size, bold);
        cairo_text_extents(cr, s, &te);
        if (te.x_advance <= max_w)
            return size;
    }
    return min_size;
}

static void draw(cairo_t *cr, const spec *sp, const layout *lay)
{
    const double ink = 0.12;   /* near-black text */
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    /* title and subtitle, centred over the grid + colour bar */
    double cx = (lay->grid_x + lay->bar_x + BAR_W) / 2;
    double avail = lay->width - 2.0 * PAD;
    cairo_set_source_rgb(cr, ink, ink, ink);
    double ts = fit_font(cr, sp->title, 18, 9, avail, true);
    set_font(cr, ts, true);
    text_at(cr, sp->title, cx, PAD + 10, 0.5);
    if (sp->subtitle && sp->subtitle[0]) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        double ss = fit_font(cr, sp->subtitle, 13, 8, avail, false);
        set_font(cr, ss, false);
        text_at(cr, sp->subtitle, cx, PAD + TITLE_H + 6, 0.5);
    }

    /* cells with their values */
    double range = sp->vmax - sp->vmin;
    char buf[64];
    for (int l = 0; l < sp->L; l++) {
        for (int s = 0; s < sp->S; s++) {
            double v = sp->w[s * sp->L + l];
            double rgb[3];
            viridis(range > 0 ? (v - sp->vmin) / range : 0.5, rgb);
            double x = lay->grid_x + s * lay->cell_w, y = lay->grid_y + l * lay->cell_h;
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, x, y, lay->cell_w, lay->cell_h);
            cairo_fill(cr);
            double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
            if (lum < 0.45)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                cairo_set_source_rgb(cr, ink, ink, ink);
            snprintf(buf, sizeof buf, "%.*f", sp->decimals, v);
            set_font(cr, fit_font(cr, buf, 11.5, 6, lay->cell_w - 6, false), false);
            text_at(cr, buf, x + lay->cell_w / 2, y + lay->cell_h / 2, 0.5);
        }
    }
    /* thin white separators keep neighbouring cells of similar colour apart */
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 1.0);
    for (int s = 1; s < sp->S; s++) {
        cairo_move_to(cr, lay->grid_x + s * lay->cell_w, lay->grid_y);
        cairo_rel_line_to(cr, 0, sp->L * lay->cell_h);
    }
    for (int l = 1; l < sp->L; l++) {
        cairo_move_to(cr, lay->grid_x, lay->grid_y + l * lay->cell_h);
        cairo_rel_line_to(cr, sp->S * lay->cell_w, 0);
    }
    cairo_stroke(cr);

    /* row labels 1..L and the rotated axis title */
    cairo_set_source_rgb(cr, ink, ink, ink);
    set_font(cr, 12.5, false);
    for (int l = 0; l < sp->L; l++) {
        snprintf(buf, sizeof buf, "%d", l + 1);
        text_at(cr, buf, lay->grid_x - 8, lay->grid_y + (l + 0.5) * lay->cell_h, 1.0);
    }
    set_font(cr, 14, true);
    cairo_save(cr);
    cairo_translate(cr, PAD + YTITLE_W / 2.0, lay->grid_y + sp->L * lay->cell_h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, "Layer", 0, 0, 0.5);
    cairo_restore(cr);

    /* column labels and axis title */
    double below = lay->grid_y + sp->L * lay->cell_h;
    set_font(cr, 12.5, false);
    for (int s = 0; s < sp->S; s++) {
        snprintf(buf, sizeof buf, "%" PRId64, sp->labels[s]);
        text_at(cr, buf, lay->grid_x + (s + 0.5) * lay->cell_w, below + COLLAB_H / 2.0 + 2, 0.5);
    }
    set_font(cr, 14, true);
    text_at(cr, "Timestep", lay->grid_x + sp->S * lay->cell_w / 2, below + COLLAB_H + XTITLE_H / 2.0,
            0.5);

    /* colour bar: vmax at the top, the same piecewise-linear viridis as the cells */
    double bx = lay->bar_x, by = lay->grid_y, bh = sp->L * lay->cell_h;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, by + bh, 0, by);
    for (int i = 0; i < 11; i++)
        cairo_pattern_add_color_stop_rgb(g, i / 10.0, viridis_stops[i][0] / 255.0,
                                         viridis_stops[i][1] / 255.0, viridis_stops[i][2] / 255.0);
    cairo_rectangle(cr, bx, by, BAR_W, bh);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, bx, by, BAR_W, bh);
    cairo_stroke(cr);
    if (range > 0) {
        int dec = 0;
        double step = nice_step(range, &dec);
        set_font(cr, 11, false);
        for (double t = ceil(sp->vmin / step - 1e-9) * step; t <= sp->vmax + 1e-9 * step;
             t += step) {
            double y = by + bh - (t - sp->vmin) / range * bh;
            cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
            cairo_move_to(cr, bx + BAR_W, y);
            cairo_rel_line_to(cr, 4, 0);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, ink, ink, ink);
            snprintf(buf, sizeof buf, "%.*f", dec, fabs(t) < step * 1e-9 ? 0.0 : t);
            text_at(cr, buf, bx + BAR_W + 7, y, 0.0);
        }
    } else {   /* all weights equal (e.g. at initialisation): one tick, mid-bar */
        cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
        cairo_move_to(cr, bx + BAR_W, by + bh / 2);
        cairo_rel_line_to(cr, 4, 0);
        cairo_stroke(cr);
        set_font(cr, 11, false);
        cairo_set_source_rgb(cr, ink, ink, ink);
        snprintf(buf, sizeof buf, "%.*f", sp->decimals, sp->vmin);
        text_at(cr, buf, bx + BAR_W + 7, by + bh / 2, 0.0);
    }
}

/* ------------------------------------------------------------------------ */
/* Rendering into memory                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} membuf;

static cairo_status_t membuf_write(void *closure, const unsigned char *data, unsigned int len)
{
    membuf *b = closure;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return CAIRO_STATUS_SUCCESS;
}

/* Same glyph metrics in PNG and SVG: no hinting of metrics. */
static void common_font_options(cairo_t *cr, bool antialias)
{
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    if (antialias)
        cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
}

static int render_png(const spec *sp, const layout *lay, membuf *out)
{
    cairo_surface_t *s = cairo_image_surface_create(
        CAIRO_FORMAT_RGB24, lay->width * DHF_HEATMAP_PNG_SCALE, lay->height * DHF_HEATMAP_PNG_SCALE);
    cairo_t *cr = cairo_create(s);
    cairo_scale(cr, DHF_HEATMAP_PNG_SCALE, DHF_HEATMAP_PNG_SCALE);
    common_font_options(cr, true);
    draw(cr, sp, lay);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png_stream(s, membuf_write, out);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS)
        return dhf_err_set("heatmap: PNG rendering failed: %s",
                           out->oom ? "out of memory" : cairo_status_to_string(st));
    return 0;
}

static int render_svg(const spec *sp, const layout *lay, membuf *out)
{
    cairo_surface_t *s =
        cairo_svg_surface_create_for_stream(membuf_write, out, lay->width, lay->height);
    cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
    cairo_t *cr = cairo_create(s);
    common_font_options(cr, false);
    draw(cr, sp, lay);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_finish(s);   /* the SVG is written to the stream here */
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS)
        return dhf_err_set("heatmap: SVG rendering failed: %s",
                           out->oom ? "out of memory" : cairo_status_to_string(st));
    return 0;
}

static char *make_csv(const spec *sp, size_t *len)
{
    size_t cap = 64 + (size_t)sp->S * 24 + (size_t)sp->L * (8 + (size_t)sp->S * 20);
    char *c = malloc(cap);
    if (!c)
        return NULL;
    size_t w = 0;
    w += (size_t)snprintf(c + w, cap - w, "layer");
    for (int s = 0; s < sp->S; s++)
        w += (size_t)snprintf(c + w, cap - w, ",%" PRId64, sp->labels[s]);
    w += (size_t)snprintf(c + w, cap - w, "\n");
    for (int l = 0; l < sp->L; l++) {
        w += (size_t)snprintf(c + w, cap - w, "%d", l + 1);
        for (int s = 0; s < sp->S; s++)
            w += (size_t)snprintf(c + w, cap - w, ",%.9g", (double)sp->w[s * sp->L + l]);
        w += (size_t)snprintf(c + w, cap - w, "\n");
    }
    *len = w;
    return c;
}

/* "<base>.png" -> base length; -1 when the path does not end in ".png". */
static int png_base_len(const char *png_path, size_t *base)
{
    size_t n = strlen(png_path);
    if (n < 5 || strcmp(png_path + n - 4, ".png") != 0)
        return dhf_err_set("heatmap: output '%s' must end in .png (the .svg and .csv go "
                           "beside it)", png_path);
    if (n + 1 > 4096)
        return dhf_err_set("heatmap: output path too long");
    *base = n - 4;
    return 0;
}

int dhf_heatmap_write(const float *weights, int num_steps, int num_layers,
                      const int64_t *labels, const char *title, const char *subtitle,
                      const char *png_path)
{
    if (!weights || !labels || !png_path)
        return dhf_err_set("heatmap: NULL weights, labels or output path");
    if (num_steps < 1 || num_steps > DHF_HEATMAP_MAX_STEPS || num_layers < 1 ||
        num_layers > DHF_HEATMAP_MAX_LAYERS)
        return dhf_err_set("heatmap: %d timesteps x %d layers (expected 1..%d x 1..%d)",
                           num_steps, num_layers, DHF_HEATMAP_MAX_STEPS, DHF_HEATMAP_MAX_LAYERS);
    size_t base = 0;
    if (png_base_len(png_path, &base) != 0)
        return -1;
    spec sp = {.w = weights, .S = num_steps, .L = num_layers, .labels = labels,
               .title = title && title[0] ? title : "Mixing weights", .subtitle = subtitle};
    sp.vmin = INFINITY;
    sp.vmax = -INFINITY;
    for (int i = 0; i < num_steps * num_layers; i++) {
        if (!isfinite(weights[i]))
            return dhf_err_set("heatmap: weight %d (timestep index %d, layer %d) is %g", i,
                               i / num_layers, i % num_layers + 1, (double)weights[i]);
        if (weights[i] < sp.vmin)
            sp.vmin = weights[i];
        if (weights[i] > sp.vmax)
            sp.vmax = weights[i];
    }
    /* 3 decimals, 4 when every weight is below 0.1 (S*L weights summing to 1 are small) */
    sp.decimals = fmax(fabs(sp.vmin), fabs(sp.vmax)) >= 0.1 ? 3 : 4;
    layout lay = make_layout(num_steps, num_layers);

    membuf png = {0}, svg = {0};
    size_t csv_len = 0;
    char *csv = NULL;
    int rc = render_png(&sp, &lay, &png);
    if (rc == 0)
        rc = render_svg(&sp, &lay, &svg);
    if (rc == 0 && !(csv = make_csv(&sp, &csv_len)))
        rc = dhf_err_set("heatmap: out of memory");
    char path[4096];
    if (rc == 0) {
        snprintf(path, sizeof path, "%.*s.csv", (int)base, png_path);
        rc = dhf_write_file_atomic(path, csv, csv_len);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%.*s.svg", (int)base, png_path);
        rc = dhf_write_file_atomic(path, svg.p, svg.len);
    }
    if (rc == 0)
        rc = dhf_write_file_atomic(png_path, png.p, png.len);
    free(csv);
    free(png.p);
    free(svg.p);
    return rc;
}

static void mode_subtitle(char *buf, size_t n, int64_t step, const char *mode, int S, int L)
{
    if (step >= 0)
        snprintf(buf, n, "softmax of the %d mixing weights \xC2\xB7 %s \xC2\xB7 step %" PRId64,
                 S * L, mode, step);
    else
        snprintf(buf, n, "softmax of the %d mixing weights \xC2\xB7 %s", S * L, mode);
}

int dhf_heatmap_write_for_config(const float *weights, int num_layers, const dhf_config *cfg,
                                 int64_t step, const char *png_path)
{
    if (!cfg)
        return dhf_err_set("heatmap: NULL config");
    int S = cfg->save_timestep.n;
    int64_t labels[DHF_HEATMAP_MAX_STEPS];
    if (dhf_heatmap_column_labels(cfg->save_timestep.v, S, cfg->diffusion_mode,
                                  cfg->flip_timesteps, labels) != 0)
        return -1;
    char title[DHF_CFG_STR + 32], sub[256];
    snprintf(title, sizeof title, "Mixing weights: %s", cfg->run_name[0] ? cfg->run_name : "(unnamed run)");
    mode_subtitle(sub, sizeof sub, step, cfg->diffusion_mode, S, num_layers);
    return dhf_heatmap_write(weights, S, num_layers, labels, title, sub, png_path);
}

/* save_timestep, diffusion_mode, flip_timesteps from the checkpoint's config JSON,
 * read directly so that keys this build does not know cannot get in the way. */
static int labels_from_config_json(const char *ckpt, const char *json, int64_t *labels, int *S,
                                   char *mode, size_t mode_cap)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "save_timestep");
    const cJSON *dm = cJSON_GetObjectItemCaseSensitive(o, "diffusion_mode");
    const cJSON *flip = cJSON_GetObjectItemCaseSensitive(o, "flip_timesteps");
    int64_t st[DHF_HEATMAP_MAX_STEPS];
    int n = cJSON_IsArray(ts) ? cJSON_GetArraySize(ts) : -1;
    const char *bad = NULL;
    if (!cJSON_IsObject(o))
        bad = "is not a JSON object";
    else if (n < 1 || n > DHF_HEATMAP_MAX_STEPS)
        bad = "has no save_timestep list of 1..64 labels";
    else if (!cJSON_IsString(dm))
        bad = "has no diffusion_mode string";
    else if (flip && !cJSON_IsBool(flip))
        bad = "has a flip_timesteps that is not a boolean";
    for (int s = 0; !bad && s < n; s++) {
        const cJSON *e = cJSON_GetArrayItem(ts, s);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble))
            bad = "has a save_timestep entry that is not an integer";
        else
            st[s] = (int64_t)e->valuedouble;
    }
    int rc = 0;
    if (bad)
        rc = dhf_err_set("%s: __metadata__ 'config' %s", ckpt, bad);
    else {
        snprintf(mode, mode_cap, "%s", dm->valuestring);
        rc = dhf_heatmap_column_labels(st, n, dm->valuestring, flip && cJSON_IsTrue(flip), labels);
        if (rc != 0)
            dhf_err_wrap("%s", ckpt);
        *S = n;
    }
    cJSON_Delete(o);
    return rc;
}

int dhf_heatmap_from_checkpoint(const char *ckpt_path, const char *title, const char *png_path,
                                int *num_steps, int *num_layers)
{
    if (!ckpt_path || !png_path)
        return dhf_err_set("heatmap: NULL checkpoint or output path");
    size_t base = 0;
    if (png_base_len(png_path, &base) != 0)
        return -1;
    dhf_ckpt_meta meta;
    if (dhf_ckpt_read_meta(ckpt_path, &meta) != 0)
        return -1;
    int64_t labels[DHF_HEATMAP_MAX_STEPS];
    int S = 0;
    char mode[32];
    if (labels_from_config_json(ckpt_path, meta.config_json, labels, &S, mode, sizeof mode) != 0) {
        dhf_ckpt_meta_free(&meta);
        return -1;
    }
    dhf_st_file *f = NULL;
    const dhf_st_info *info = NULL;
    float *raw = NULL, *w = NULL;
    int rc = dhf_st_open(ckpt_path, &f);
    if (rc == 0)
        rc = dhf_st_get(f, "mixing_weights", &info);
    int L = 0;
    if (rc == 0) {
        if (info->ndim != 1 || info->numel < S || info->numel % S != 0 ||
            info->numel / S > DHF_HEATMAP_MAX_LAYERS)
            rc = dhf_err_set("%s: tensor 'mixing_weights': expected [S*L] with S = %d saved "
                             "timesteps and 1..%d layers, got %" PRId64 " values in %d dims",
                             ckpt_path, S, DHF_HEATMAP_MAX_LAYERS, info->numel, info->ndim);
        else
            L = (int)(info->numel / S);
    }
    if (rc == 0 && meta.has_cache && meta.cache.num_layers != L)
        rc = dhf_err_set("%s: tensor 'mixing_weights' has %d layers per timestep but the "
                         "cache identity lists %d", ckpt_path, L, meta.cache.num_layers);
    if (rc == 0 && (!(raw = malloc(sizeof *raw * (size_t)(S * L))) ||
                    !(w = malloc(sizeof *w * (size_t)(S * L)))))
        rc = dhf_err_set("heatmap: out of memory");
    if (rc == 0)
        rc = dhf_st_read_f32(f, "mixing_weights", raw, (size_t)(S * L));
    if (rc == 0 && (rc = dhf_heatmap_softmax(raw, S * L, w)) != 0)
        dhf_err_wrap("%s", ckpt_path);
    if (rc == 0) {
        char def_title[DHF_CFG_STR + 32], sub[256];
        snprintf(def_title, sizeof def_title, "Mixing weights: %s",
                 meta.run_name[0] ? meta.run_name : dhf_basename(ckpt_path));
        mode_subtitle(sub, sizeof sub, meta.step, mode, S, L);
        rc = dhf_heatmap_write(w, S, L, labels, title && title[0] ? title : def_title, sub,
                               png_path);
    }
    if (rc == 0 && num_steps)
        *num_steps = S;
    if (rc == 0 && num_layers)
        *num_layers = L;
    free(raw);
    free(w);
    dhf_st_close(f);
    dhf_ckpt_meta_free(&meta);
    return rc;
}
