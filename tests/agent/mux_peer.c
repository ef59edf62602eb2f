/*
 * A C mux peer for tests/interop/agent_mux.js. Records on stdin and stdout are
 * u32le length, one kind byte, then the body:
 *   in  'F' frame for hsp_mux_recv      out 'F' frame the mux sends
 *   in  'C' command line (below)        out 'E' event line
 * Commands: open <protocol> <id hex|-> <handshake hex> | send <ch> <type> <hex> |
 *           sendkey <ch> <seq> (payload "C<channel id hex>:<seq>", type 0) |
 *           close <ch> | cork | uncork | count | echo on|off
 * Events:   req <protocol> <id hex|-> <hs hex> | opened <ch> | open <ch> <hs hex> |
 *           msg <ch> <type> <len> <hex of up to 64 bytes> <fnv1a of payload> <channel id hex|-> |
 *           close <ch> |
 *           count <n> | error <text>
 * Open requests are accepted (handshake "c-ok") unless the protocol starts with "reject".
 * With echo on (the default) each message is sent back unchanged on its channel.
 */
#include "hex.h"
#include "mux.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool echo = true;

/* Each channel's user pointer is its id in hex (or "-"), so messages can name their key. */
static void *key_of(const uint8_t *id, size_t n, bool has_id) {
  char *k = malloc(2 * n + 2);
  if (!k) abort();
  if (!has_id || n == 0) strcpy(k, "-");
  else hsp_hex_encode(k, id, n);
  return k;
}

static void record(char kind, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  uint32_t n = (uint32_t)(alen + blen + 1);
  uint8_t h[5] = {n & 255, n >> 8 & 255, n >> 16 & 255, n >> 24 & 255, (uint8_t)kind};
  fwrite(h, 1, 5, stdout);
  if (alen) fwrite(a, 1, alen, stdout);
  if (blen) fwrite(b, 1, blen, stdout);
}

static void event(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  record('E', (const uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
         NULL, 0);
}

static const char *hex(const uint8_t *p, size_t n, size_t max) {
  static char buf[2][2 * 300 + 2];
  static int which;
  char *out = buf[which ^= 1];
  if (n > max) n = max;
  if (n == 0) return "-";
  hsp_hex_encode(out, p, n);
  return out;
}

static uint32_t fnv(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static int on_send(void *d, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  (void)d;
  record('F', a, alen, b, blen);
  return 0;
}
static void on_req(void *d, hsp_mux_t *m, const hsp_mux_open_request_t *r) {
  (void)d;
  event("req %.*s %s %s", (int)r->protocol_len, r->protocol,
        r->id ? hex(r->id, r->id_len, 64) : "-", hex(r->handshake, r->handshake_len, 256));
  if (r->protocol_len >= 6 && memcmp(r->protocol, "reject", 6) == 0) return;
  uint32_t ch;
  void *key = key_of(r->id, r->id_len, r->id != NULL);
  int rc = hsp_mux_open(m, r->protocol, r->protocol_len, r->id, r->id_len, r->id != NULL,
                        (const uint8_t *)"c-ok", 4, false, key, &ch);
  if (rc) {
    free(key);
    event("error accept %s", hsp_mux_strerror(rc));
  }
}
static void on_open(void *d, hsp_mux_t *m, uint32_t ch, void *user, const uint8_t *hs,
                    size_t n) {
  (void)d, (void)m, (void)user;
  event("open %u %s", ch, hex(hs, n, 256));
}
static void on_msg(void *d, hsp_mux_t *m, uint32_t ch, void *user, uint64_t type,
                   const uint8_t *p, size_t n) {
  (void)d;
  event("msg %u %llu %zu %s %08x %s", ch, (unsigned long long)type, n, hex(p, n, 64), fnv(p, n),
        (const char *)user);
  if (echo) {
    int rc = hsp_mux_send(m, ch, type, p, n);
    if (rc) event("error echo %s", hsp_mux_strerror(rc));
  }
}
static void on_close(void *d, hsp_mux_t *m, uint32_t ch, void *user) {
  (void)d, (void)m;
  free(user);
  event("close %u", ch);
}


static size_t unhex(uint8_t *out, size_t cap, const char *h) {
  if (strcmp(h, "-") == 0) return 0;
  size_t n = strlen(h) / 2;
  if (n > cap || hsp_hex_decode(out, n, h) != 0) return (size_t)-1;
  return n;
}

static void command(hsp_mux_t *m, char *line) {
  static uint8_t a[1 << 16], b[1 << 16];
  char *argv[5] = {0};
  int argc = 0;
  for (char *t = strtok(line, " "); t && argc < 5; t = strtok(NULL, " ")) argv[argc++] = t;
  if (argc == 0) return;
  int rc = 0;
  if (strcmp(argv[0], "open") == 0 && argc == 4) {
    size_t idn = unhex(a, sizeof a, argv[2]), hsn = unhex(b, sizeof b, argv[3]);
    if (idn == (size_t)-1 || hsn == (size_t)-1) {
      event("error bad hex");
      return;
    }
    uint32_t ch;
    bool has_id = strcmp(argv[2], "-") != 0;
    void *key = key_of(a, idn, has_id);
    rc = hsp_mux_open(m, (const uint8_t *)argv[1], strlen(argv[1]), a, idn, has_id, b, hsn,
                      false, key, &ch);
    if (!rc) event("opened %u", ch);
    else free(key);
  } else if (strcmp(argv[0], "send") == 0 && argc == 4) {
    size_t n = unhex(a, sizeof a, argv[3]);
    if (n == (size_t)-1) {
      event("error bad hex");
      return;
    }
    rc = hsp_mux_send(m, (uint32_t)strtoul(argv[1], NULL, 10), strtoull(argv[2], NULL, 10), a, n);
  } else if (strcmp(argv[0], "sendkey") == 0 && argc == 3) {
    /* "C<channel id hex>:<seq>": the payload names the key as this side knows it. */
    uint32_t ch = (uint32_t)strtoul(argv[1], NULL, 10);
    const char *key = hsp_mux_user(m, ch);
    char p[128];
    int n = snprintf(p, sizeof p, "C%s:%s", key ? key : "?", argv[2]);
    rc = key ? hsp_mux_send(m, ch, 0, (const uint8_t *)p, (size_t)n) : HSP_MUX_EINVAL;
  } else if (strcmp(argv[0], "close") == 0 && argc == 2) {
    uint32_t ch = (uint32_t)strtoul(argv[1], NULL, 10);
    void *user = hsp_mux_user(m, ch);
    rc = hsp_mux_close(m, ch);
    if (!rc) free(user);
  } else if (strcmp(argv[0], "cork") == 0) {
    hsp_mux_cork(m);
  } else if (strcmp(argv[0], "uncork") == 0) {
    rc = hsp_mux_uncork(m);
  } else if (strcmp(argv[0], "count") == 0) {
    event("count %zu", hsp_mux_channel_count(m));
  } else if (strcmp(argv[0], "echo") == 0 && argc == 2) {
    echo = strcmp(argv[1], "on") == 0;
  } else {
    event("error unknown command %s", argv[0]);
  }
  if (rc) event("error %s %s", argv[0], hsp_mux_strerror(rc));
}

int main(void) {
  hsp_mux_callbacks_t cb = {on_send, on_req, on_open, on_msg, on_close};
  hsp_mux_t *m = hsp_mux_new(&cb, NULL);
  uint8_t *buf = NULL;
  size_t cap = 0;
  for (;;) {
    uint8_t h[4];
    if (fread(h, 1, 4, stdin) != 4) break;
    size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
    if (n == 0) break;
    if (n + 1 > cap) {
      cap = n + 1;
      uint8_t *q = realloc(buf, cap);
      if (!q) break;
      buf = q;
    }
    if (fread(buf, 1, n, stdin) != n) break;
    if (buf[0] == 'F') {
      int rc = hsp_mux_recv(m, buf + 1, n - 1);
      if (rc) event("error recv %s %s", hsp_mux_strerror(rc), hex(buf + 1, n - 1, 256));
    } else if (buf[0] == 'C') {
      buf[n] = 0;
      command(m, (char *)buf + 1);
    }
    fflush(stdout);
  }
  hsp_mux_destroy(m);
  fflush(stdout);
  free(buf);
  return 0;
}
