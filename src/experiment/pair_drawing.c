/* pair_drawing.c — side-by-side pair drawings with cairo (pair_drawing.h). */
#include "experiment/pair_drawing.h"

#include <cairo.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

/* an RGB image as a cairo surface (ARGB32, opaque) */
static cairo_surface_t *surface_of(const dhf_image *im)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, im->width, im->height);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < im->height; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)y * (size_t)stride);
        for (int x = 0; x < im->width; x++) {
            const uint8_t *p = im->rgb + ((size_t)y * im->width + x) * 3;
            row[x] = 0xFF000000u | ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* HSV (h in [0, 1)) to RGB */
static void hsv(double h, double s, double v, double rgb[3])
{
    double i = floor(h * 6), f = h * 6 - i, p = v * (1 - s), q = v * (1 - f * s),
           t = v * (1 - (1 - f) * s);
    switch ((int)i % 6) {
    case 0: rgb[0] = v, rgb[1] = t, rgb[2] = p; break;
    case 1: rgb[0] = q, rgb[1] = v, rgb[2] = p; break;
    case 2: rgb[0] = p, rgb[1] = v, rgb[2] = t; break;
    case 3: rgb[0] = p, rgb[1] = q, rgb[2] = v; break;
    case 4: rgb[0] = t, rgb[1] = p, rgb[2] = v; break;
    default: rgb[0] = v, rgb[1] = p, rgb[2] = q; break;
    }
}

static void dot(cairo_t *cr, double x, double y, double r, const double c[3], bool filled)
{
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    if (filled) {
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_set_line_width(cr, 1.0);
        cairo_stroke(cr);
    } else {
        cairo_set_line_width(cr, 2.0);
        cairo_stroke(cr);
    }
}

int dhf_draw_pair(const dhf_pair_drawing *d, const char *png_path)
{
    const int title_h = d->title ? 26 : 0, gap = 12;
    double H = d->a->height > d->b->height ? d->a->height : d->b->height;
    if (H < 256)
        H = 256;
    double sa = H / d->a->height, sb = H / d->b->height;
    int W = (int)ceil(d->a->width * sa) + gap + (int)ceil(d->b->width * sb);
    int CH = (int)ceil(H) + title_h;
    cairo_surface_t *canvas = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, CH);
    cairo_t *cr = cairo_create(canvas);
    cairo_surface_t *ia = surface_of(d->a), *ib = surface_of(d->b);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    if (d->title) {
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(cr, 14);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, 6, 18);
        cairo_show_text(cr, d->title);
    }
    double bx = d->a->width * sa + gap;
    /* the images, scaled (nearest for small images, so pixels stay visible) */
    cairo_save(cr);
    cairo_translate(cr, 0, title_h);
    cairo_scale(cr, sa, sa);
    cairo_set_source_surface(cr, ia, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), sa > 2 ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_save(cr);
    cairo_translate(cr, bx, title_h);
    cairo_scale(cr, sb, sb);
    cairo_set_source_surface(cr, ib, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), sb > 2 ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD);
    cairo_paint(cr);
    cairo_restore(cr);
    /* points: pixel centres at integers, so x + 0.5 scaled */
    for (int i = 0; i < d->n; i++) {
        double ax = (d->a_xy[2 * i] + 0.5) * sa, ay = (d->a_xy[2 * i + 1] + 0.5) * sa + title_h;
        double px = bx + (d->b_xy[2 * i] + 0.5) * sb, py = (d->b_xy[2 * i + 1] + 0.5) * sb + title_h;
        double c[3];
        if (d->b_true_xy) {
            hsv((double)i / (d->n > 0 ? d->n : 1), 0.85, 0.95, c);
            double tx = bx + (d->b_true_xy[2 * i] + 0.5) * sb;
            double ty = (d->b_true_xy[2 * i + 1] + 0.5) * sb + title_h;
            bool ok = d->correct && d->correct[i];
            cairo_set_source_rgb(cr, ok ? 0.1 : 0.9, ok ? 0.75 : 0.1, 0.1);
            cairo_set_line_width(cr, 2.0);
            cairo_move_to(cr, px, py);
            cairo_line_to(cr, tx, ty);
            cairo_stroke(cr);
            dot(cr, tx, ty, 6, c, false);
        } else {
            /* the source position's colour: hue from x, brightness from y */
            double u = d->a_xy[2 * i] / (d->a->width > 1 ? d->a->width - 1 : 1);
            double v = d->a_xy[2 * i + 1] / (d->a->height > 1 ? d->a->height - 1 : 1);
            hsv(0.83 * u, 0.9, 1.0 - 0.55 * v, c);
        }
        dot(cr, ax, ay, 4.5, c, true);
        dot(cr, px, py, 4.5, c, true);
    }
    cairo_destroy(cr);
    cairo_surface_destroy(ia);
    cairo_surface_destroy(ib);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", png_path, (long)getpid());
    cairo_status_t st = cairo_surface_write_to_png(canvas, tmp);
    cairo_surface_destroy(canvas);
    if (st != CAIRO_STATUS_SUCCESS) {
        remove(tmp);
        return dhf_err_set("%s: %s", png_path, cairo_status_to_string(st));
    }
    if (rename(tmp, png_path) != 0) {
        remove(tmp);
        return dhf_err_set("%s: cannot write", png_path);
    }
    return 0;
}
