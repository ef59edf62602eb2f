/*
 * Registry load and abuse over the real network, for the end-to-end tests.
 *   reg_load register REGKEY BOOTSTRAP N TTL_MS [WINDOW]
 *                                      N registrations, WINDOW (default N) in flight at any
 *                                      time; prints "KEY I" for each acknowledged one (its
 *                                      version is 1.0.I)
 *   reg_load check REGKEY BOOTSTRAP FILE
 *                                      asks the registry for every "KEY I" line of FILE (a
 *                                      QUERY of load@1.0.I each); prints how many are missing
 *   reg_load bad REGKEY BOOTSTRAP                 forged, replayed, misaddressed and
 *                                                 malformed requests: each must be refused
 *                                                 and the connection must stay usable
 *   reg_load verify DBFILE SEEDHEX                hsp_store_verify on a registry database
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "frame.h"
#include "hex.h"
#include "hyper_conn.h"
#include "net.h"
#include "protocol.h"

typedef struct load {
  hsp_dht_io_t *io;
  hsp_reg_session_t *session;
  uint8_t registry[32];
  int mode; /* 0 register, 1 bad, 2 check */
  size_t n, acked, next, window, answered, missing;
  bool *done;           /* register: acknowledged; check: answered */
  uint64_t *check_index; /* check: I of each line */
  uint8_t (*check_key)[32];
  uint32_t ttl;
  hsp_crypto_keypair_t *keys;
  int step, failures;
  uint8_t *replay;
  size_t replay_len;
  uv_timer_t timer;
  int rc;
} load_t;

static void session_closed(void *ctx) {
  load_t *l = ctx;
  hsp_dht_io_close(l->io, NULL, NULL);
}

static void finish(load_t *l, int rc) {
  if (uv_is_closing((uv_handle_t *)&l->timer)) return;
  l->rc = rc;
  uv_close((uv_handle_t *)&l->timer, NULL);
  hsp_reg_session_close(l->session, session_closed, l);
}

static long signed_register(load_t *l, const hsp_crypto_keypair_t *kp, uint64_t id,
                            const uint8_t registry[32], uint8_t **out) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = HSP_REG_MSG_REGISTER;
  memcpy(m.inst.key, kp->public_key, 32);
  snprintf(m.inst.name, sizeof m.inst.name, "load");
  snprintf(m.inst.version, sizeof m.inst.version, "1.0.%llu", (unsigned long long)id);
  snprintf(m.inst.tags, sizeof m.inst.tags, "{}");
  m.inst.ttl_ms = l->ttl;
  memcpy(m.registry, registry, 32);
  m.ts_ms = hsp_reg_clock_ms();
  hsp_reg_msg_sign(&m, kp->secret_key);
  return hsp_reg_msg_encode_alloc(&m, out);
}

static void send_raw(load_t *l, const uint8_t *msg, size_t len) {
  if (hsp_reg_session_send(l->session, msg, len) != 0) fprintf(stderr, "send failed\n");
}

static void send_register(load_t *l, size_t i) {
  uint8_t *msg;
  long n = signed_register(l, &l->keys[i], i + 1, l->registry, &msg);
  if (n > 0) send_raw(l, msg, (size_t)n);
  free(msg);
}

/* keeps `window` registrations in flight */
static void send_more(load_t *l) {
  while (l->next < l->n && l->next - l->acked < l->window && hsp_reg_session_up(l->session))
    send_register(l, l->next++);
}

/* bad mode: each step sends one request and names the answer it expects */
static const struct {
  const char *what;
  int want; /* 0 = OK */
} steps[] = {
    {"valid registration", 0},
    {"replay of that registration", HSP_REG_EREPLAY},
    {"forged signature", HSP_REG_ESIG},
    {"request for another registry", HSP_REG_EDENIED},
    {"malformed message", HSP_REG_EINVAL},
    {"unknown protocol version", HSP_REG_EVERSION},
    {"registration of someone else's key", HSP_REG_ESIG},
    {"query after all that (connection still usable)", 1},
    {"oversized frame (the registry drops that connection only)", 2},
    {"query on the next connection: nothing lost", 1},
};
#define STEP_OVERSIZED 8

static void bad_step(load_t *l) {
  uint8_t *msg = NULL;
  long n = 0;
  uint64_t id = 100 + (uint64_t)l->step;
  switch (l->step) {
  case 0:
    n = signed_register(l, &l->keys[0], id, l->registry, &msg);
    l->replay = malloc((size_t)n);
    memcpy(l->replay, msg, (size_t)n);
    l->replay_len = (size_t)n;
    break;
  case 1: send_raw(l, l->replay, l->replay_len); return; /* same bytes, same id 100 */
  case 2:
    n = signed_register(l, &l->keys[1], id, l->registry, &msg);
    msg[n - 1] ^= 1; /* last byte of the signature */
    break;
  case 3: {
    uint8_t other[32];
    memset(other, 7, 32);
    n = signed_register(l, &l->keys[1], id, other, &msg);
    break;
  }
  case 4: {
    uint8_t junk[] = {1, 104, 1, 0xff, 0xff};
    send_raw(l, junk, sizeof junk);
    return;
  }
  case 5: {
    uint8_t v2[] = {2, 105, 5};
    send_raw(l, v2, sizeof v2);
    return;
  }
  case 6: { /* key 1's registration signed by key 2: the instance key must sign */
    hsp_reg_msg_t m;
    memset(&m, 0, sizeof m);
    m.id = id;
    m.type = HSP_REG_MSG_REGISTER;
    memcpy(m.inst.key, l->keys[0].public_key, 32);
    snprintf(m.inst.name, sizeof m.inst.name, "load");
    snprintf(m.inst.version, sizeof m.inst.version, "9.9.9");
    m.inst.ttl_ms = l->ttl;
    memcpy(m.registry, l->registry, 32);
    m.ts_ms = hsp_reg_clock_ms() + 5;
    hsp_reg_msg_sign(&m, l->keys[2].secret_key);
    n = hsp_reg_msg_encode_alloc(&m, &msg);
    break;
  }
  case STEP_OVERSIZED: { /* more than any request may be: answered by a disconnect */
    size_t big = HSP_REG_FRAME_REQUEST_MAX + 1;
    uint8_t *junk = calloc(1, big);
    if (junk) send_raw(l, junk, big);
    free(junk);
    return;
  }
  case 7:
  case 9: {
    hsp_reg_msg_t m;
    memset(&m, 0, sizeof m);
    m.id = id;
    m.type = HSP_REG_MSG_QUERY;
    snprintf(m.name, sizeof m.name, "load");
    snprintf(m.range, sizeof m.range, "*");
    n = hsp_reg_msg_encode_alloc(&m, &msg);
    break;
  }
  }
  if (n > 0) send_raw(l, msg, (size_t)n);
  free(msg);
}

static void on_message(void *ud, const uint8_t *buf, size_t len) {
  load_t *l = ud;
  hsp_reg_msg_t m;
  if (hsp_reg_msg_decode(&m, buf, len) != 0) {
    fprintf(stderr, "undecodable answer\n");
    return;
  }
  if (l->mode == 0) {
    if (m.type == HSP_REG_MSG_OK && m.id >= 1 && m.id <= l->n && !l->done[m.id - 1]) {
      char hex[65];
      hsp_hex_encode(hex, l->keys[m.id - 1].public_key, 32);
      printf("%s %llu\n", hex, (unsigned long long)m.id);
      fflush(stdout);
      l->done[m.id - 1] = true;
      if (++l->acked == l->n) finish(l, 0);
      else send_more(l);
    } else if (m.type == HSP_REG_MSG_ERROR) {
      fprintf(stderr, "registration %llu refused: %s\n", (unsigned long long)m.id, m.message);
    }
  } else if (l->mode == 2) {
    if (m.id >= 1 && m.id <= l->n && !l->done[m.id - 1]) {
      l->done[m.id - 1] = true;
      bool found = m.type == HSP_REG_MSG_INSTANCES && m.ninstances == 1 &&
                   !memcmp(m.instances[0].key, l->check_key[m.id - 1], 32);
      if (!found) {
        l->missing++;
        fprintf(stderr, "missing: registration %llu\n", (unsigned long long)l->check_index[m.id - 1]);
      }
      if (++l->answered == l->n) {
        printf("checked %zu acknowledged registrations: %zu missing\n", l->n, l->missing);
        finish(l, l->missing ? 1 : 0);
      }
    }
  } else {
    int got = m.type == HSP_REG_MSG_OK ? 0 : m.type == HSP_REG_MSG_ERROR ? m.code
              : m.type == HSP_REG_MSG_INSTANCES ? (m.ninstances == 1 && !strcmp(m.instances[0].version, "1.0.100") ? 1 : -99)
                                                : -98;
    int want = steps[l->step].want;
    bool idok = m.id == (l->step == 1 ? 100 : 100 + (uint64_t)l->step) || (l->step == 5 && m.id == 0);
    printf("%s: %s (%d)\n", steps[l->step].what, got == want && idok ? "ok" : "WRONG", got);
    fflush(stdout);
    if (got != want || !idok) l->failures++;
    if (++l->step == (int)(sizeof steps / sizeof steps[0])) finish(l, l->failures ? 1 : 0);
    else bad_step(l);
  }
  hsp_reg_msg_free(&m);
}

static void on_up(void *ud) {
  load_t *l = ud;
  if (l->mode == 1) {
    if (l->step == STEP_OVERSIZED) { /* reconnected after the registry dropped us */
      printf("%s: ok\n", steps[l->step].what);
      fflush(stdout);
      l->step++;
    }
    bad_step(l);
    return;
  }
  if (l->mode == 2) {
    for (size_t i = 0; i < l->n; i++) {
      if (l->done[i]) continue;
      hsp_reg_msg_t m;
      memset(&m, 0, sizeof m);
      m.id = i + 1;
      m.type = HSP_REG_MSG_QUERY;
      snprintf(m.name, sizeof m.name, "load");
      snprintf(m.range, sizeof m.range, "1.0.%llu", (unsigned long long)l->check_index[i]);
      uint8_t buf[256];
      long n = hsp_reg_msg_encode(&m, buf, sizeof buf);
      if (n > 0) send_raw(l, buf, (size_t)n);
    }
    return;
  }
  /* after a reconnection, whatever was in flight again (a registration is idempotent) */
  for (size_t i = 0; i < l->next; i++)
    if (!l->done[i]) send_register(l, i);
  send_more(l);
}

static void on_down(void *ud, int err) {
  (void)ud;
  fprintf(stderr, "registry unreachable: %s\n", hsp_dht_conn_strerror(err));
}

static void ready(hsp_dht_io_t *io, void *ctx) {
  load_t *l = ctx;
  if (l->session) return;
  hsp_reg_session_cbs_t cbs = {on_up, on_down, on_message};
  hsp_reg_session_start(&l->session, io, l->registry, &cbs, l);
}

static void timeout(uv_timer_t *t) {
  load_t *l = t->data;
  fprintf(stderr, "timed out (%zu acknowledged, step %d)\n", l->acked, l->step);
  finish(l, 1);
}

int main(int argc, char **argv) {
  if (hsp_crypto_init() != 0) return 1;
  if (argc == 4 && !strcmp(argv[1], "verify")) {
    uint8_t seed[32];
    hsp_crypto_keypair_t kp;
    if (hsp_hex_decode(seed, 32, argv[3])) return 2;
    hsp_crypto_keypair_from_seed(&kp, seed);
    hsp_store_t *st;
    int err = hsp_store_open(&st, argv[2], kp.secret_key);
    if (!err) err = hsp_store_verify(st);
    uint64_t seq = 0;
    if (st) hsp_store_head(st, &seq, NULL);
    printf("verify: %s, %llu log entries\n", err ? hsp_reg_strerror(err) : "ok", (unsigned long long)seq);
    hsp_store_close(st);
    return err ? 1 : 0;
  }
  bool reg = (argc == 6 || argc == 7) && !strcmp(argv[1], "register");
  bool bad = argc == 4 && !strcmp(argv[1], "bad");
  bool check = argc == 5 && !strcmp(argv[1], "check");
  if (!reg && !bad && !check) {
    fprintf(stderr, "usage: see the comment at the top of reg_load.c\n");
    return 2;
  }
  load_t l = {.mode = bad ? 1 : check ? 2 : 0, .n = reg ? (size_t)atol(argv[4]) : 3,
              .ttl = reg ? (uint32_t)atol(argv[5]) : 60000};
  l.window = argc == 7 ? (size_t)atol(argv[6]) : l.n;
  if (hsp_hex_decode(l.registry, 32, argv[2])) return 2;
  if (check) { /* "KEY I" lines */
    FILE *f = fopen(argv[4], "r");
    if (!f) return 2;
    char line[200];
    size_t cap = 0;
    l.n = 0;
    while (fgets(line, sizeof line, f)) {
      char hex[65];
      unsigned long long idx;
      if (sscanf(line, "%64s %llu", hex, &idx) != 2) continue;
      if (l.n == cap) {
        cap = cap ? cap * 2 : 1024;
        l.check_key = realloc(l.check_key, cap * 32);
        l.check_index = realloc(l.check_index, cap * sizeof *l.check_index);
      }
      if (hsp_hex_decode(l.check_key[l.n], 32, hex)) continue;
      l.check_index[l.n++] = idx;
    }
    fclose(f);
    if (l.n == 0) {
      printf("nothing to check\n");
      return 0;
    }
  }
  l.done = calloc(l.n, sizeof *l.done);
  l.keys = calloc(l.n, sizeof *l.keys);
  for (size_t i = 0; !check && i < l.n; i++) hsp_crypto_keypair_random(&l.keys[i]);
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = argv[3];
  if (hsp_dht_io_create(&l.io, loop, &o) != 0) return 1;
  uv_timer_init(loop, &l.timer);
  l.timer.data = &l;
  uv_timer_start(&l.timer, timeout, 90000, 0);
  hsp_dht_io_on_ready(l.io, ready, &l);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  free(l.keys);
  free(l.done);
  free(l.check_key);
  free(l.check_index);
  free(l.replay);
  return l.rc;
}
