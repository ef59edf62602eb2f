/* Length-prefixed frames (frame.h) and the JSON the commands print (json.h). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "frame.h"
#include "json.h"

typedef struct got {
  char msgs[8][64];
  size_t lens[8];
  int n;
  int stop_at; /* return 1 from the n-th message (1-based), 0 = never */
} got_t;

static int collect(void *ud, const uint8_t *msg, size_t len) {
  got_t *g = ud;
  if (g->n < 8 && len < 64) {
    memcpy(g->msgs[g->n], msg, len);
    g->msgs[g->n][len] = '\0';
    g->lens[g->n] = len;
  }
  g->n++;
  return g->stop_at && g->n == g->stop_at ? 1 : 0;
}

static size_t frame(uint8_t *out, const char *s) {
  size_t n;
  uint8_t *f = hsp_reg_frame_encode((const uint8_t *)s, strlen(s), &n);
  memcpy(out, f, n);
  free(f);
  return n;
}

int main(void) {
  uint8_t buf[256];
  size_t len = frame(buf, "hello");
  CHECK_EQ_INT(len, 9);
  CHECK(buf[0] == 5 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0);
  len += frame(buf + len, "");
  len += frame(buf + len, "world!");

  /* every split of the same bytes gives the same three messages */
  for (size_t a = 0; a <= len; a++) {
    for (size_t b = a; b <= len; b++) {
      hsp_reg_framer_t f;
      hsp_reg_framer_init(&f, 64);
      got_t g = {0};
      CHECK_EQ_INT(hsp_reg_framer_push(&f, buf, a, collect, &g), 0);
      CHECK_EQ_INT(hsp_reg_framer_push(&f, buf + a, b - a, collect, &g), 0);
      CHECK_EQ_INT(hsp_reg_framer_push(&f, buf + b, len - b, collect, &g), 0);
      CHECK_EQ_INT(g.n, 3);
      CHECK_EQ_STR(g.msgs[0], "hello");
      CHECK_EQ_INT(g.lens[1], 0);
      CHECK_EQ_STR(g.msgs[2], "world!");
      CHECK_EQ_INT(f.len, 0);
      hsp_reg_framer_free(&f);
    }
  }

  /* a length over the limit is refused, even before its body arrives */
  hsp_reg_framer_t f;
  hsp_reg_framer_init(&f, 4);
  got_t g = {0};
  CHECK_EQ_INT(hsp_reg_framer_push(&f, buf, 2, collect, &g), 0);
  CHECK_EQ_INT(hsp_reg_framer_push(&f, buf + 2, 2, collect, &g), HSP_REG_EINVAL);
  CHECK_EQ_INT(g.n, 0);
  hsp_reg_framer_free(&f);

  /* a callback's non-zero return stops delivery and is returned */
  hsp_reg_framer_init(&f, 64);
  got_t h = {.stop_at = 1};
  CHECK_EQ_INT(hsp_reg_framer_push(&f, buf, len, collect, &h), 1);
  CHECK_EQ_INT(h.n, 1);
  hsp_reg_framer_free(&f);

  /* JSON: quotes, backslashes and control characters escaped; truncation is safe */
  char out[64];
  size_t n = hsp_json_string(out, sizeof out, 0, "a\"b\\c\n\x01");
  CHECK_EQ_STR(out, "\"a\\\"b\\\\c\\u000a\\u0001\"");
  CHECK_EQ_INT(n, strlen(out));
  char small[8];
  n = hsp_json_string(small, sizeof small, 0, "abcdefghij");
  CHECK_EQ_INT(n, 12);
  CHECK_EQ_INT(strlen(small), 7);
  hsp_reg_instance_t inst = {.ttl_ms = 15000, .expires_ms = 42};
  memset(inst.key, 0xab, sizeof inst.key);
  strcpy(inst.name, "couchdb");
  strcpy(inst.version, "3.2.2");
  strcpy(inst.tags, "{\"port\":5984}");
  char big[HSP_REG_INSTANCE_JSON_MAX];
  hsp_reg_instance_json(big, sizeof big, &inst);
  CHECK(strstr(big, "\"name\":\"couchdb\",\"version\":\"3.2.2\",\"tags\":\"{\\\"port\\\":5984}\"") != NULL);
  CHECK(strstr(big, "\"ttlMs\":15000") && strstr(big, "\"expiresMs\":42}"));
  return check_summary("registry frame");
}
