/* JSON text for what the commands print about instances (ls --json, service and proxy
 * logs). Output only: the registry never parses JSON. */
#ifndef HSP_REGISTRY_JSON_H
#define HSP_REGISTRY_JSON_H

#include <stddef.h>

#include "registry.h"

/* Appends `s` as a quoted JSON string to out (NUL-terminated, truncated to cap).
 * Returns the length the whole output would have. */
size_t hsp_json_string(char *out, size_t cap, size_t at, const char *s);
/* {"key":…,"name":…,"version":…,"tags":…,"ttlMs":…,"registeredMs":…,"renewedMs":…,
 *  "expiresMs":…}; returns the length it would have (>= cap means truncated). */
size_t hsp_reg_instance_json(char *out, size_t cap, const hsp_reg_instance_t *inst);
/* Appends "role":…,"version":…,"tags":… (what service and proxy print) at `at`. */
size_t hsp_reg_role_json(char *out, size_t cap, size_t at, const hsp_reg_instance_t *inst);
/* Enough for any instance. */
#define HSP_REG_INSTANCE_JSON_MAX (8 * (HSP_REG_TAGS_MAX + HSP_REG_VERSION_MAX + HSP_REG_NAME_MAX) + 512)

#endif
