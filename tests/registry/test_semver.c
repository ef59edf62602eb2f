#include <string.h>

#include "check.h"
#include "registry.h"
#include "semver.h"

static int cmp(const char *a, const char *b) {
  hsp_semver_t x, y;
  if (hsp_semver_parse(&x, a, strlen(a)) || hsp_semver_parse(&y, b, strlen(b))) return 99;
  return hsp_semver_compare(&x, &y);
}

int main(void) {
  /* parsing */
  hsp_semver_t v;
  CHECK_EQ_INT(hsp_semver_parse(&v, " v1.2.3-beta.1+build.5 ", 23), 0);
  CHECK_EQ_INT(v.major, 1);
  CHECK_EQ_INT(v.patch, 3);
  CHECK_EQ_STR(v.pre, "beta.1");
  char buf[HSP_SEMVER_FORMAT_MAX];
  CHECK(hsp_semver_format(&v, buf, sizeof buf) > 0);
  CHECK_EQ_STR(buf, "1.2.3-beta.1");
  CHECK(hsp_semver_parse(&v, "1.2", 3) < 0);
  CHECK(hsp_semver_parse(&v, "01.2.3", 6) < 0);
  CHECK(hsp_semver_parse(&v, "1.2.3-01", 8) < 0);
  CHECK(hsp_semver_parse(&v, "=1.2.3", 6) < 0); /* node: '=' only in ranges */
  CHECK(hsp_semver_parse(&v, "9007199254740992.0.0", 20) < 0);
  CHECK_EQ_INT(hsp_semver_parse(&v, "9007199254740991.0.0", 20), 0);

  /* precedence, the semver.org example chain */
  const char *chain[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                         "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"};
  for (int i = 0; i + 1 < 8; i++) CHECK_EQ_INT(cmp(chain[i], chain[i + 1]), -1);
  CHECK_EQ_INT(cmp("1.0.0+a", "1.0.0+b"), 0);
  CHECK_EQ_INT(cmp("2.0.0", "10.0.0"), -1);

  /* ranges */
  struct { const char *v, *r; bool want; } t[] = {
      {"3.2.2", "3.x", true},        {"4.0.0", "3.x", false},     {"3.9.9", "3", true},
      {"1.0.0", "*", true},          {"1.0.0-rc.1", "*", false},  {"1.2.9", "~1.2.3", true},
      {"1.3.0", "~1.2.3", false},    {"1.9.0", "^1.2.3", true},   {"2.0.0", "^1.2.3", false},
      {"0.2.5", "^0.2.3", true},     {"0.3.0", "^0.2.3", false},  {"0.0.4", "^0.0.3", false},
      {"1.2.3", "1.2.3 - 2.3.4", true}, {"2.3.4", "1.2.3 - 2.3.4", true},
      {"2.3.5", "1.2.3 - 2.3.4", false}, {"2.3.9", "1.2.3 - 2.3", true},
      {"1.5.0", ">=1.5.0", true},    {"1.4.9", ">= 1.5.0", false}, {"1.0.0", "<1 || >=2", false},
      {"2.1.0", "<1 || >=2", true},  {"1.2.3-beta.2", ">1.2.3-beta.1", true},
      {"1.2.4-beta.2", ">1.2.3-beta.1", false}, {"1.2.3", "=1.2.3", true},
      {"1.2.3", "v1.2.3", true},     {"1.2.3", "1.2.3+build", true}, {"1.0.0", "", true},
      {"1.0.0", "garbage", false},   {"1.0.0", ">=1.0.0 <", false},  {"1.0.0", "1.2.3 - ", false},
      {"1.2.0", "^ 1.2", true},      {"1.2.5", "~> 1.2.0", true}, {"1.2.0", "==1.2", true},
      {"1.2.3", "=1.2.3 - 2", false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    bool got = hsp_semver_satisfies(t[i].v, t[i].r);
    if (got != t[i].want) fprintf(stderr, "satisfies(%s, %s) != %d\n", t[i].v, t[i].r, t[i].want);
    CHECK(got == t[i].want);
  }

  const char *vs[] = {"1.2.0", "2.0.0", "1.9.9", "2.0.0+b", "3.0.0-rc.1"};
  CHECK_EQ_INT(hsp_semver_max_satisfying(vs, 5, "1.x"), 2);
  CHECK_EQ_INT(hsp_semver_max_satisfying(vs, 5, "*"), 1); /* first of equals wins */
  CHECK_EQ_INT(hsp_semver_max_satisfying(vs, 5, ">=3.0.0-rc.0"), 4);
  CHECK_EQ_INT(hsp_semver_max_satisfying(vs, 5, "4"), -1);
  CHECK_EQ_INT(hsp_semver_max_satisfying(vs, 5, "bad range"), -1);

  char big[HSP_SEMVER_RANGE_MAX_LEN + 2];
  memset(big, '1', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  hsp_semver_range_t r;
  CHECK_EQ_INT(hsp_semver_range_parse(&r, big, strlen(big)), HSP_SEMVER_ETOOLONG);
  /* role strings */
  char name[HSP_REG_NAME_MAX + 1], spec[HSP_SEMVER_RANGE_MAX_LEN + 1];
  CHECK_EQ_INT(hsp_reg_role_split("couchdb@3.2.2", name, spec), 0);
  CHECK_EQ_STR(name, "couchdb");
  CHECK_EQ_STR(spec, "3.2.2");
  CHECK_EQ_INT(hsp_reg_role_split("@scope/db@^1 || 2", name, spec), 0);
  CHECK_EQ_STR(name, "@scope/db");
  CHECK_EQ_STR(spec, "^1 || 2");
  CHECK_EQ_INT(hsp_reg_role_split("@scope/db", name, spec), 0);
  CHECK_EQ_STR(name, "@scope/db");
  CHECK_EQ_STR(spec, "");
  CHECK_EQ_INT(hsp_reg_role_split("web", name, spec), 0);
  CHECK_EQ_STR(spec, "");
  CHECK_EQ_INT(hsp_reg_role_split("@", name, spec), HSP_REG_EINVAL);
  CHECK_EQ_INT(hsp_reg_role_split("", name, spec), HSP_REG_EINVAL);
  CHECK_EQ_INT(hsp_reg_role_split("bad name@1", name, spec), HSP_REG_EINVAL);
  CHECK_EQ_INT(hsp_reg_role_split("a@b@1.0.0", name, spec), HSP_REG_EINVAL);
  return check_summary("test_registry_semver");
}
