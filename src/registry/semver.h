/*
 * Semantic versions and ranges with the semantics of npm `semver` 7.7.3 called without
 * options (not loose, no includePrerelease): what `semver.satisfies`, `semver.maxSatisfying`
 * and `semver.compare` answer, the answer here is the same (checked by the differential test
 * tests/interop/registry_semver.js).
 *
 * Versions: `v`-prefix accepted as node does; build metadata is parsed and ignored for
 * precedence. Ranges: exact, comparators (<, <=, >, >=, =), x-ranges (`1.x`, `1`, `*`),
 * `~`, `^`, hyphen ranges, `||`, whitespace between operator and version, and node's
 * prerelease rule (a prerelease version only satisfies a comparator set that names a
 * prerelease of the same major.minor.patch).
 *
 * Inputs are byte strings of ASCII; only ASCII whitespace is treated as whitespace (node's
 * also accepts Unicode spaces).
 */
#ifndef HSP_REGISTRY_SEMVER_H
#define HSP_REGISTRY_SEMVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSP_SEMVER_MAX_LEN 256       /* node's MAX_LENGTH for a version string */
#define HSP_SEMVER_RANGE_MAX_LEN 2048 /* ours: node has none, a registry request needs one */
#define HSP_SEMVER_MAX_SAFE 9007199254740991ULL

enum hsp_semver_error {
  HSP_SEMVER_OK = 0,
  HSP_SEMVER_EINVAL = -1,  /* not a valid version / range */
  HSP_SEMVER_ETOOLONG = -2,
  HSP_SEMVER_ENOMEM = -3,
};
const char *hsp_semver_strerror(int err);

typedef struct hsp_semver {
  uint64_t major, minor, patch;
  /* Dotted prerelease identifiers without the leading '-', NUL-terminated; "" if none. */
  char pre[HSP_SEMVER_MAX_LEN + 1];
} hsp_semver_t;

/* Parses a version (surrounding whitespace and one leading 'v' allowed). */
int hsp_semver_parse(hsp_semver_t *out, const char *text, size_t len);
/* Canonical text "M.m.p[-pre]" (node's `version`); out needs HSP_SEMVER_MAX_LEN + 64. */
#define HSP_SEMVER_FORMAT_MAX (HSP_SEMVER_MAX_LEN + 64)
int hsp_semver_format(const hsp_semver_t *v, char *out, size_t cap);
/* -1, 0, 1 by semver precedence (build metadata ignored). */
int hsp_semver_compare(const hsp_semver_t *a, const hsp_semver_t *b);

enum hsp_semver_op { HSP_SEMVER_EQ, HSP_SEMVER_LT, HSP_SEMVER_LE, HSP_SEMVER_GT, HSP_SEMVER_GE };

typedef struct hsp_semver_comparator {
  uint8_t op;
  hsp_semver_t v;
} hsp_semver_comparator_t;

/* A range is an OR of sets; each set is an AND of comparators (an empty set matches all). */
typedef struct hsp_semver_range {
  hsp_semver_comparator_t *comps; /* all comparators, set after set */
  size_t *set_end;                /* set i is comps[set_end[i-1] .. set_end[i]) */
  size_t ncomps, nsets;
} hsp_semver_range_t;

/* Parses a range; on success *out owns heap memory released by hsp_semver_range_free. */
int hsp_semver_range_parse(hsp_semver_range_t *out, const char *text, size_t len);
void hsp_semver_range_free(hsp_semver_range_t *r);
bool hsp_semver_range_test(const hsp_semver_range_t *r, const hsp_semver_t *v);

/* node's satisfies(): false when either string is invalid. */
bool hsp_semver_satisfies(const char *version, const char *range);
/* node's maxSatisfying(): index of the highest satisfying version (the first one among
 * equals), or -1 if none or the range is invalid. */
long hsp_semver_max_satisfying(const char *const *versions, size_t n, const char *range);

#endif
