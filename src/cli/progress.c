/*
 * progress.c - the progress line long commands draw on stderr: rate and
 * ETA, redrawn in place, only when stderr is a terminal and not --quiet
 * (a log file gets no carriage-return noise).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <unistd.h>

static void format_duration(double seconds, char *out, size_t n)
{
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, n, "%ld:%02ld", s / 60, s % 60);
}

void cli_progress(const struct tmap_progress *p, void *user_data)
{
    (void)user_data;
    if (cli_quiet || !isatty(STDERR_FILENO))
        return;
    double rate = p->seconds > 0 ? (double)p->done / p->seconds : 0;
    double tok_rate = p->seconds > 0 ? (double)p->n_tokens / p->seconds : 0;
    char eta[32];
    format_duration(rate > 0 ? (double)(p->total - p->done) / rate : 0, eta, sizeof eta);
    int width = 24, filled = p->total ? (int)((double)p->done / (double)p->total * width) : width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-10s %zu/%zu [%s] %.0f samples/s %.0f tok/s ETA %s   ", p->stage, p->done,
            p->total, bar, rate, tok_rate, eta);
    if (p->done >= p->total)
        fputc('\n', stderr);
    fflush(stderr);
}
