// libs: hsp_registry
/* Range and version parsing on arbitrary bytes: must never crash, leak or read out of
 * bounds; a parsed range must test any version without trouble. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "semver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* first line: the version; the rest: the range */
  const char *s = (const char *)data;
  const uint8_t *nl = memchr(data, '\n', size);
  size_t vlen = nl ? (size_t)(nl - data) : 0;
  hsp_semver_t v;
  bool have_v = hsp_semver_parse(&v, s, vlen) == 0;
  const char *rs = nl ? s + vlen + 1 : s;
  size_t rlen = nl ? size - vlen - 1 : size;
  hsp_semver_range_t r;
  if (hsp_semver_range_parse(&r, rs, rlen) == 0) {
    if (have_v) (void)hsp_semver_range_test(&r, &v);
    for (size_t i = 0; i < r.ncomps; i++) (void)hsp_semver_range_test(&r, &r.comps[i].v);
    hsp_semver_range_free(&r);
  }
  if (have_v) {
    char out[HSP_SEMVER_FORMAT_MAX];
    hsp_semver_t w;
    int n = hsp_semver_format(&v, out, sizeof out);
    if (n > 0 && (hsp_semver_parse(&w, out, (size_t)n) != 0 || hsp_semver_compare(&v, &w) != 0))
      __builtin_trap(); /* formatting must round-trip */
  }
  return 0;
}
