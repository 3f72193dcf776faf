/* fuzz_config.c — the YAML configuration through its schema (core/config.h): load,
 * validate, write back as YAML and JSON, load that again. */
#include "fuzz_util.h"

#include "core/config.h"

/* the defaults, made once (making them parses every key's default) */
static dhf_config g_def;
static int g_have_def;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_have_def) {
        dhf_config_defaults(&g_def);
        g_have_def = 1;
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    static dhf_config c, back;
    c = g_def;
    if (dhf_config_load_string(&c, text, "fuzz") == 0 && dhf_config_validate(&c) == 0) {
        char *js = dhf_config_to_json(&c);
        free(js);
        char *yaml = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&yaml, &len);
        if (f) {
            dhf_config_write_yaml(&c, f);
            fclose(f);
            back = g_def;
            /* what dhf writes it must read back */
            if (dhf_config_load_string(&back, yaml, "round trip") != 0)
                abort();
            free(yaml);
        }
    }
    free(text);
    return 0;
}
