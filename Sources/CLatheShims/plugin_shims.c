#include "lathe_shims.h"
#include <stdlib.h>
#include <string.h>

static _Thread_local char *lts_plugin_error_text = NULL;
static _Thread_local void *lts_loading_plugin_object = NULL;

void lts_set_plugin_error(const char *message) {
    free(lts_plugin_error_text);
    lts_plugin_error_text = message ? strdup(message) : NULL;
}

const char *lts_plugin_error(void) { return lts_plugin_error_text; }

void *lts_loading_plugin(void) { return lts_loading_plugin_object; }

void lts_set_loading_plugin(void *plugin) { lts_loading_plugin_object = plugin; }
