/* progress.c — TTY progress bar / periodic plain progress lines on stderr. */
#include "core/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void dhf_format_duration(double s, char *buf, int n)
{
    if (s < 0 || s != s)
        snprintf(buf, (size_t)n, "?");
    else if (s < 60)
        snprintf(buf, (size_t)n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, (size_t)n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, (size_t)n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void dhf_progress_begin(dhf_progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "it");
    p->total = total;
    p->t_start = p->t_last_print = dhf_now();
    p->interval = 10.0;
    const char *env = getenv("DHF_PROGRESS");
    p->enabled = !(env && strcmp(env, "0") == 0);
    p->tty = isatty(STDERR_FILENO) && !(env && strcmp(env, "plain") == 0);
}

void dhf_progress_set_unit(dhf_progress *p, const char *unit)
{
    snprintf(p->unit, sizeof p->unit, "%s", unit);
}

static void render(dhf_progress *p, const char *note, bool final)
{
    double el = dhf_now() - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0.0;
    char eta[32] = "", elapsed[32];
    dhf_format_duration(el, elapsed, sizeof elapsed);
    if (p->total > 0 && rate > 0 && !final)
        dhf_format_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
    char count[64];
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld", (long long)p->done, (long long)p->total);
    else
        snprintf(count, sizeof count, "%lld", (long long)p->done);
    char rate_s[48];
    if (rate >= 1.0 || rate == 0.0)
        snprintf(rate_s, sizeof rate_s, "%.2f %s/s", rate, p->unit);
    else
        snprintf(rate_s, sizeof rate_s, "%.2f s/%s", 1.0 / rate, p->unit);
    if (p->tty) {
        char bar[26] = "";
        if (p->total > 0) {
            int fill = (int)(24.0 * (double)p->done / (double)p->total);
            if (fill > 24)
                fill = 24;
            for (int i = 0; i < 24; i++)
                bar[i] = i < fill ? '#' : '.';
            bar[24] = '\0';
        }
        fprintf(stderr, "\r\033[K%s [%s] %s %s %s%s%s%s%s", p->label, bar, count, rate_s,
                final ? "in " : (eta[0] ? "ETA " : ""), final ? elapsed : eta,
                note ? "  " : "", note ? note : "", final ? "\n" : "");
    } else {
        fprintf(stderr, "%s: %s %s, elapsed %s%s%s%s%s\n", p->label, count, rate_s, elapsed,
                eta[0] ? ", ETA " : "", eta, note ? "  " : "", note ? note : "");
    }
    fflush(stderr);
}

void dhf_progress_step(dhf_progress *p, int64_t n, const char *note)
{
    p->done += n;
    if (!p->enabled)
        return;
    double now = dhf_now();
    if (p->tty) {
        if (now - p->t_last_print >= 0.1 || (p->total > 0 && p->done >= p->total)) {
            render(p, note, false);
            p->t_last_print = now;
        }
    } else if (now - p->t_last_print >= p->interval) {
        render(p, note, false);
        p->t_last_print = now;
    }
}

void dhf_progress_end(dhf_progress *p)
{
    if (p->finished)
        return;
    p->finished = true;
    if (p->enabled)
        render(p, NULL, true);
}
