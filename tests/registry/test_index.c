/* The in-memory index against a trivially correct model under random churn: open
 * addressing with backward-shift deletion and per-name groups are easy to get subtly
 * wrong, and the replica answers every lookup from here. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "index.h"

#define KEYS 300

typedef struct model {
  bool live;
  hsp_reg_instance_t in;
} model_t;

static model_t model[KEYS];
static uint64_t seq;
static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 8) % n;
}

static void key_of(int k, uint8_t key[32]) {
  memset(key, 0, 32);
  key[0] = (uint8_t)k;
  key[1] = (uint8_t)(k >> 8);
}

static int cmp_model(const void *a, const void *b) {
  return hsp_reg_instance_order(*(hsp_reg_instance_t *const *)a, *(hsp_reg_instance_t *const *)b);
}

/* keys: how many distinct instance keys churn; few keys keep the table small and dense
 * (64 slots at up to half load), so probe chains wrap around its end. */
static void run(int keys) {
  memset(model, 0, sizeof model);
  hsp_reg_index_t *ix = hsp_reg_index_new();
  CHECK(ix != NULL);
  const char *names[] = {"a", "b", "c", "@s/d"};
  const char *versions[] = {"1.0.0", "1.2.0", "2.0.0", "2.0.0-rc.1", "0.9.9"};
  int mismatches = 0;
  for (int op = 0; op < 20000; op++) {
    int k = (int)rnd((unsigned)keys);
    hsp_reg_entry_t e;
    memset(&e, 0, sizeof e);
    e.seq = ++seq;
    e.time_ms = seq;
    key_of(k, e.inst.key);
    unsigned what = rnd(10);
    int want_err = 0;
    if (what < 5) {
      e.type = HSP_REG_REGISTER;
      snprintf(e.inst.name, sizeof e.inst.name, "%s", names[rnd(4)]);
      snprintf(e.inst.version, sizeof e.inst.version, "%s", versions[rnd(5)]);
      snprintf(e.inst.tags, sizeof e.inst.tags, "t%d", op);
      e.inst.ttl_ms = 15000;
      e.inst.expires_ms = seq + 15000;
      e.inst.registered_ms = e.inst.renewed_ms = seq;
      e.inst.reg_seq = seq;
      model[k].live = true;
      model[k].in = e.inst;
    } else if (what < 7) {
      e.type = HSP_REG_RENEW;
      e.inst.ttl_ms = 20000;
      e.inst.expires_ms = seq + 20000;
      if (model[k].live) {
        model[k].in.ttl_ms = 20000;
        model[k].in.expires_ms = seq + 20000;
        model[k].in.renewed_ms = seq;
      } else {
        want_err = HSP_REG_ENOTFOUND;
      }
    } else {
      e.type = what < 9 ? HSP_REG_DEREGISTER : HSP_REG_EXPIRE;
      if (!model[k].live) want_err = HSP_REG_ENOTFOUND;
      model[k].live = false;
    }
    CHECK_EQ_INT(hsp_reg_index_apply(ix, &e), want_err);
    if (op % 97 != 0) continue;
    /* full comparison */
    size_t live = 0;
    for (int j = 0; j < KEYS; j++) {
      uint8_t key[32];
      key_of(j, key);
      hsp_reg_instance_t got;
      bool has = hsp_reg_index_get(ix, key, &got);
      if (has != model[j].live || (has && memcmp(&got, &model[j].in, sizeof got) != 0)) mismatches++;
      live += model[j].live;
    }
    CHECK_EQ_INT(hsp_reg_index_count(ix), live);
    /* queries: same set, same order as sorting the model */
    static hsp_reg_instance_t out[KEYS];
    static const hsp_reg_instance_t *exp[KEYS];
    const char *ranges[] = {"*", "1.x", ">=2.0.0-rc.0", "^1.0.0 || 0.9"};
    for (int n = 0; n < 4; n++) {
      for (int r = 0; r < 4; r++) {
        hsp_semver_range_t rg;
        CHECK_EQ_INT(hsp_semver_range_parse(&rg, ranges[r], strlen(ranges[r])), 0);
        size_t ne = 0;
        for (int j = 0; j < KEYS; j++) {
          if (!model[j].live || strcmp(model[j].in.name, names[n])) continue;
          hsp_semver_t v;
          hsp_semver_parse(&v, model[j].in.version, strlen(model[j].in.version));
          if (hsp_semver_range_test(&rg, &v)) exp[ne++] = &model[j].in;
        }
        qsort(exp, ne, sizeof *exp, cmp_model);
        long got = hsp_reg_index_query(ix, names[n], &rg, out, KEYS);
        CHECK_EQ_INT(got, ne);
        for (size_t j = 0; j < ne && j < (size_t)got; j++)
          if (memcmp(&out[j], exp[j], sizeof out[j]) != 0) mismatches++;
        hsp_semver_range_free(&rg);
      }
    }
  }
  CHECK_EQ_INT(mismatches, 0);
  hsp_reg_index_free(ix);
}

int main(void) {
  run(31);
  run(KEYS);
  return check_summary("test_registry_index");
}
