/* dnnl_env.c — the process-wide oneDNN engine and stream (dnnl_env.h). */
#include "engine/dnnl_env.h"

#ifdef DHF_HAVE_DNNL
#include <dnnl_debug.h>
#include <pthread.h>

#include "core/error.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static dnnl_status_t g_init_st = dnnl_runtime_error;
static const char *g_init_what = "not initialised";

static void env_init(void)
{
    g_init_st = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
    if (g_init_st != dnnl_success) {
        g_init_what = "dnnl_engine_create";
        return;
    }
    g_init_st = dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags);
    if (g_init_st != dnnl_success)
        g_init_what = "dnnl_stream_create";
}

int dhf_dnnl_env(const char *who, dnnl_engine_t *engine, dnnl_stream_t *stream)
{
    pthread_once(&g_once, env_init);
    if (g_init_st != dnnl_success)
        return dhf_err_set("%s: %s: %s", who, g_init_what, dnnl_status2str(g_init_st));
    if (engine)
        *engine = g_engine;
    if (stream)
        *stream = g_stream;
    return 0;
}
#else
typedef int dhf_dnnl_env_unused; /* ISO C: no empty translation unit */
#endif
