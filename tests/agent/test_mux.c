/*
 * Mux tests: exact wire bytes of each frame kind (as protomux 3.12 writes them), two C muxes
 * talking through in-memory queues (pairing, reject, close races, id reuse, batching), and
 * malformed frames.
 */
#include "check.h"
#include "hex.h"
#include "mux.h"

#include <stdarg.h>
#include <stdlib.h>

typedef struct frame {
  uint8_t *data;
  size_t len;
} frame_t;

typedef struct side {
  const char *name;
  hsp_mux_t *mux;
  struct side *peer;
  frame_t q[4096]; /* frames sent by this side, not yet delivered */
  size_t qlen;
  char log[16384];
  size_t loglen;
  int accept; /* 1: accept open requests with handshake "ok"; 0: leave them (rejected) */
  int echo;   /* reply to each message with "re:" + payload on the same channel */
  uint32_t last_ch;
} side_t;

static void logf_(side_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(s->log + s->loglen, sizeof s->log - s->loglen, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof s->log - s->loglen) s->loglen += (size_t)n;
}

static int do_send(void *d, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  side_t *s = d;
  if (s->qlen == 4096) return -1;
  frame_t *f = &s->q[s->qlen++];
  f->len = alen + blen;
  f->data = malloc(f->len ? f->len : 1);
  memcpy(f->data, a, alen);
  if (blen) memcpy(f->data + alen, b, blen);
  return 0;
}
static void on_req(void *d, hsp_mux_t *m, const hsp_mux_open_request_t *r) {
  side_t *s = d;
  logf_(s, "req %.*s id=%.*s hs=%.*s\n", (int)r->protocol_len, r->protocol,
        r->id ? (int)r->id_len : 1, r->id ? (const char *)r->id : "-", (int)r->handshake_len,
        r->handshake);
  if (!s->accept) return;
  uint32_t ch;
  int rc = hsp_mux_open(m, r->protocol, r->protocol_len, r->id, r->id_len, r->id != NULL,
                        (const uint8_t *)"ok", 2, true, NULL, &ch);
  CHECK_EQ_INT(rc, 0);
  s->last_ch = ch;
}
static void on_open(void *d, hsp_mux_t *m, uint32_t ch, void *user, const uint8_t *hs, size_t n) {
  (void)m, (void)user;
  logf_(d, "open %u hs=%.*s\n", ch, (int)n, (const char *)hs);
}
static void on_msg(void *d, hsp_mux_t *m, uint32_t ch, void *user, uint64_t type,
                   const uint8_t *p, size_t n) {
  side_t *s = d;
  (void)user;
  logf_(s, "msg %u t%llu %.*s\n", ch, (unsigned long long)type, (int)n, (const char *)p);
  if (s->echo) {
    char buf[256];
    int k = snprintf(buf, sizeof buf, "re:%.*s", (int)n, (const char *)p);
    CHECK_EQ_INT(hsp_mux_send(m, ch, type, (const uint8_t *)buf, (size_t)k), 0);
  }
}
static void on_close(void *d, hsp_mux_t *m, uint32_t ch, void *user) {
  (void)m, (void)user;
  logf_(d, "close %u\n", ch);
}
static const hsp_mux_callbacks_t cbs = {do_send, on_req, on_open, on_msg, on_close};

static void pair_init(side_t *a, side_t *b) {
  memset(a, 0, sizeof *a);
  memset(b, 0, sizeof *b);
  a->name = "A", b->name = "B";
  a->peer = b, b->peer = a;
  a->mux = hsp_mux_new(&cbs, a);
  b->mux = hsp_mux_new(&cbs, b);
}
/* Delivers queued frames both ways until both queues are empty. */
static void pump(side_t *a, side_t *b) {
  while (a->qlen || b->qlen) {
    side_t *from = a->qlen ? a : b;
    frame_t f = from->q[0];
    memmove(from->q, from->q + 1, (from->qlen - 1) * sizeof *from->q);
    from->qlen--;
    CHECK_EQ_INT(hsp_mux_recv(from->peer->mux, f.data, f.len), 0);
    free(f.data);
  }
}
static void pair_free(side_t *a, side_t *b) {
  pump(a, b);
  hsp_mux_destroy(a->mux);
  hsp_mux_destroy(b->mux);
}
static void log_reset(side_t *s) { s->loglen = 0, s->log[0] = 0; }

static char *hex_of(const frame_t *f) {
  static char buf[1024];
  hsp_hex_encode(buf, f->data, f->len < 500 ? f->len : 500);
  return buf;
}

static uint32_t open_ch(side_t *s, const char *proto, const char *id, const char *hs) {
  uint32_t ch = 0;
  int rc = hsp_mux_open(s->mux, (const uint8_t *)proto, strlen(proto), (const uint8_t *)id,
                        id ? strlen(id) : 0, id != NULL, (const uint8_t *)hs, strlen(hs), true,
                        NULL, &ch);
  CHECK_EQ_INT(rc, 0);
  return ch;
}

static void test_wire_bytes(void) {
  side_t a, b;
  pair_init(&a, &b);
  uint32_t ch = open_ch(&a, "a", NULL, "");
  CHECK_EQ_INT(ch, 1);
  CHECK_EQ_STR(hex_of(&a.q[0]), "000101016100"); /* control, open, id 1, "a", no id */
  ch = open_ch(&a, "hyperseaport/tcp", "\x01\x02", "hs");
  CHECK_EQ_STR(hex_of(&a.q[1]),
               "000102106879706572736561706f72742f7463700201026873");
  CHECK_EQ_INT(hsp_mux_send(a.mux, 1, 0, (const uint8_t *)"x", 1), 0);
  CHECK_EQ_STR(hex_of(&a.q[2]), "010078");
  CHECK_EQ_INT(hsp_mux_send(a.mux, 2, 300, (const uint8_t *)"", 0), 0);
  CHECK_EQ_STR(hex_of(&a.q[3]), "02fd2c01");
  CHECK_EQ_INT(hsp_mux_close(a.mux, 1), 0);
  CHECK_EQ_STR(hex_of(&a.q[4]), "000301");
  /* Batch: the same frames corked, switching channel with a zero length. */
  hsp_mux_cork(a.mux);
  CHECK_EQ_INT(hsp_mux_send(a.mux, 2, 1, (const uint8_t *)"ab", 2), 0);
  CHECK_EQ_INT(hsp_mux_send(a.mux, 2, 1, (const uint8_t *)"c", 1), 0);
  CHECK_EQ_INT(hsp_mux_close(a.mux, 2), 0);
  CHECK_EQ_INT(a.qlen, 5);
  CHECK_EQ_INT(hsp_mux_uncork(a.mux), 0);
  CHECK_EQ_INT(a.qlen, 6);
  CHECK_EQ_STR(hex_of(&a.q[5]), "000002"
                                "03016162"  /* len 3: type 1, "ab" */
                                "020163"    /* len 2: type 1, "c" */
                                "0000"      /* switch to channel 0 */
                                "020302");  /* len 2: close 2 */
  b.accept = 1;
  pair_free(&a, &b);
}

static void test_open_message_close(void) {
  side_t a, b;
  pair_init(&a, &b);
  b.accept = 1;
  b.echo = 1;
  uint32_t ch = open_ch(&a, "echo", "conn-1", "hello");
  CHECK(!hsp_mux_is_open(a.mux, ch));
  /* Messages sent before pairing are fine: the peer decides in its callback. */
  CHECK_EQ_INT(hsp_mux_send(a.mux, ch, 0, (const uint8_t *)"early", 5), 0);
  pump(&a, &b);
  CHECK(hsp_mux_is_open(a.mux, ch));
  CHECK_EQ_STR(b.log, "req echo id=conn-1 hs=hello\nopen 1 hs=hello\nmsg 1 t0 early\n");
  CHECK_EQ_STR(a.log, "open 1 hs=ok\nmsg 1 t0 re:early\n");
  log_reset(&a), log_reset(&b);
  CHECK_EQ_INT(hsp_mux_send(a.mux, ch, 7, (const uint8_t *)"x", 1), 0);
  pump(&a, &b);
  CHECK_EQ_STR(a.log, "msg 1 t7 re:x\n");
  CHECK_EQ_INT(hsp_mux_channel_count(a.mux), 1);
  CHECK_EQ_INT(hsp_mux_channel_count(b.mux), 1);
  /* unique: a second open with the same key is refused. */
  uint32_t dup;
  CHECK_EQ_INT(hsp_mux_open(a.mux, (const uint8_t *)"echo", 4, (const uint8_t *)"conn-1", 6,
                            true, NULL, 0, true, NULL, &dup),
               HSP_MUX_EEXIST);
  CHECK_EQ_INT(hsp_mux_close(a.mux, ch), 0);
  CHECK_EQ_INT(hsp_mux_send(a.mux, ch, 0, (const uint8_t *)"late", 4), HSP_MUX_EINVAL);
  CHECK_EQ_INT(hsp_mux_close(a.mux, ch), HSP_MUX_EINVAL);
  pump(&a, &b);
  CHECK_EQ_STR(b.log, "msg 1 t7 x\nclose 1\n");
  CHECK_EQ_INT(hsp_mux_channel_count(a.mux), 0);
  CHECK_EQ_INT(hsp_mux_channel_count(b.mux), 0);
  /* Ids are reused on both sides. */
  log_reset(&a), log_reset(&b);
  ch = open_ch(&a, "echo", "conn-2", "");
  CHECK_EQ_INT(ch, 1);
  pump(&a, &b);
  CHECK_EQ_STR(b.log, "req echo id=conn-2 hs=\nopen 1 hs=\n");
  /* Closing from the accepting side. */
  CHECK_EQ_INT(hsp_mux_close(b.mux, b.last_ch), 0);
  pump(&a, &b);
  CHECK_EQ_STR(a.log, "open 1 hs=ok\nclose 1\n");
  pair_free(&a, &b);
}

static void test_reject_and_races(void) {
  side_t a, b;
  pair_init(&a, &b);
  uint32_t ch = open_ch(&a, "nobody", NULL, "");
  pump(&a, &b);
  CHECK_EQ_STR(b.log, "req nobody id=- hs=\n");
  CHECK_EQ_STR(a.log, "close 1\n");
  CHECK(!hsp_mux_is_open(a.mux, ch));
  CHECK_EQ_INT(hsp_mux_channel_count(a.mux), 0);

  /* Both open the same key at once: each open pairs with the other's, no request. */
  log_reset(&a), log_reset(&b);
  uint32_t ca = open_ch(&a, "sym", "k", "from-a");
  uint32_t cb = open_ch(&b, "sym", "k", "from-b");
  pump(&a, &b);
  CHECK_EQ_STR(a.log, "open 1 hs=from-b\n");
  CHECK_EQ_STR(b.log, "open 1 hs=from-a\n");
  CHECK(hsp_mux_is_open(a.mux, ca) && hsp_mux_is_open(b.mux, cb));
  hsp_mux_close(a.mux, ca);
  hsp_mux_close(b.mux, cb); /* both close at once: each ignores the other's close */
  pump(&a, &b);
  CHECK_EQ_STR(a.log, "open 1 hs=from-b\n");

  /* Closed before the peer answered: the id stays taken until the peer's open arrives. */
  log_reset(&a), log_reset(&b);
  b.accept = 1;
  ca = open_ch(&a, "quick", NULL, "");
  CHECK_EQ_INT(ca, 1);
  CHECK_EQ_INT(hsp_mux_close(a.mux, ca), 0);
  uint32_t other = open_ch(&a, "other", NULL, "");
  CHECK_EQ_INT(other, 2);
  pump(&a, &b);
  CHECK_EQ_STR(a.log, "open 2 hs=ok\n");
  CHECK_EQ_STR(b.log, "req quick id=- hs=\nopen 1 hs=\nclose 1\nreq other id=- hs=\nopen 1 hs=\n");
  CHECK_EQ_INT(open_ch(&a, "third", NULL, ""), 1); /* now free again */
  pump(&a, &b);
  CHECK_EQ_INT(hsp_mux_channel_count(a.mux), 2);
  CHECK_EQ_INT(hsp_mux_channel_count(b.mux), 2);
  log_reset(&a), log_reset(&b);
  pair_free(&a, &b);
  CHECK_EQ_STR(a.log, "close 1\nclose 2\n"); /* destroy closes what is open */
}

static void test_batches(void) {
  side_t a, b;
  pair_init(&a, &b);
  b.accept = 1;
  b.echo = 1;
  hsp_mux_cork(a.mux);
  uint32_t c1 = open_ch(&a, "p", "1", "");
  uint32_t c2 = open_ch(&a, "p", "2", "");
  hsp_mux_send(a.mux, c1, 0, (const uint8_t *)"one", 3);
  hsp_mux_send(a.mux, c2, 0, (const uint8_t *)"two", 3);
  hsp_mux_send(a.mux, c1, 1, (const uint8_t *)"three", 5);
  hsp_mux_cork(a.mux); /* nested corks flush at the outermost uncork */
  CHECK_EQ_INT(hsp_mux_uncork(a.mux), 0);
  CHECK_EQ_INT(a.qlen, 0);
  CHECK_EQ_INT(hsp_mux_uncork(a.mux), 0);
  CHECK_EQ_INT(a.qlen, 1);
  /* B answers the batch with one batch: two opens and three echoes. */
  frame_t f = a.q[0];
  a.qlen = 0;
  CHECK_EQ_INT(hsp_mux_recv(b.mux, f.data, f.len), 0);
  free(f.data);
  CHECK_EQ_INT(b.qlen, 1);
  pump(&a, &b);
  CHECK_EQ_STR(b.log, "req p id=1 hs=\nopen 1 hs=\nreq p id=2 hs=\nopen 2 hs=\n"
                      "msg 1 t0 one\nmsg 2 t0 two\nmsg 1 t1 three\n");
  CHECK_EQ_STR(a.log, "open 1 hs=ok\nopen 2 hs=ok\nmsg 1 t0 re:one\nmsg 2 t0 re:two\n"
                      "msg 1 t1 re:three\n");
  pair_free(&a, &b);
}

static void test_many_channels(void) {
  side_t a, b;
  pair_init(&a, &b);
  b.accept = 1;
  b.echo = 1;
  uint32_t ch[1000];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 1000; i++) {
      char id[16];
      snprintf(id, sizeof id, "%d", i);
      ch[i] = open_ch(&a, "tcp", id, "");
      CHECK(ch[i] >= 1 && ch[i] <= 1000);
      hsp_mux_send(a.mux, ch[i], 0, (const uint8_t *)id, strlen(id));
      if (a.qlen > 4000) pump(&a, &b);
    }
    pump(&a, &b);
    CHECK_EQ_INT(hsp_mux_channel_count(a.mux), 1000);
    CHECK_EQ_INT(hsp_mux_channel_count(b.mux), 1000);
    for (int i = 0; i < 1000; i++) {
      CHECK(hsp_mux_is_open(a.mux, ch[i]));
      hsp_mux_close(a.mux, ch[i]);
    }
    pump(&a, &b);
    CHECK_EQ_INT(hsp_mux_channel_count(b.mux), 0);
    log_reset(&a), log_reset(&b);
  }
  pair_free(&a, &b);
}

static int recv_hex(hsp_mux_t *m, const char *hex) {
  uint8_t buf[256];
  size_t n = strlen(hex) / 2;
  if (hsp_hex_decode(buf, n, hex) != 0) abort();
  return hsp_mux_recv(m, buf, n);
}

static void test_malformed(void) {
  side_t a, b;
  pair_init(&a, &b);
  hsp_mux_t *m = b.mux;
  CHECK_EQ_INT(recv_hex(m, ""), 0);             /* empty frames are ignored */
  CHECK_EQ_INT(recv_hex(m, "ff"), HSP_MUX_EPROTO); /* truncated uint */
  CHECK_EQ_INT(recv_hex(m, "00"), HSP_MUX_EPROTO); /* no type */
  CHECK_EQ_INT(recv_hex(m, "0001"), HSP_MUX_EPROTO);
  CHECK_EQ_INT(recv_hex(m, "000101"), HSP_MUX_EPROTO);
  CHECK_EQ_INT(recv_hex(m, "0001010561"), HSP_MUX_EPROTO); /* protocol cut short */
  CHECK_EQ_INT(recv_hex(m, "0001010161"), HSP_MUX_EPROTO); /* no id field */
  CHECK_EQ_INT(recv_hex(m, "000102016100"), HSP_MUX_EPROTO); /* ids must grow by one */
  CHECK_EQ_INT(recv_hex(m, "000100016100"), 0);              /* open of channel 0: ignored */
  CHECK_EQ_INT(recv_hex(m, "000201"), HSP_MUX_EPROTO);        /* reject of an id never used */
  CHECK_EQ_INT(recv_hex(m, "0002"), HSP_MUX_EPROTO);
  CHECK_EQ_INT(recv_hex(m, "0003"), HSP_MUX_EPROTO);
  CHECK_EQ_INT(recv_hex(m, "000307"), 0);   /* close of an unknown channel: ignored */
  CHECK_EQ_INT(recv_hex(m, "0009ffff"), 0); /* unknown control type: ignored */
  CHECK_EQ_INT(recv_hex(m, "05006869"), 0); /* message on an unknown channel: ignored */
  CHECK_EQ_INT(recv_hex(m, "0000"), HSP_MUX_EPROTO); /* batch without its channel */
  CHECK_EQ_INT(recv_hex(m, "000000"), 0);             /* empty batch */
  CHECK_EQ_INT(recv_hex(m, "0000000509"), 0);         /* item longer than the frame: cut */
  CHECK_EQ_INT(recv_hex(m, "00000005"), HSP_MUX_EPROTO); /* ...to nothing: no type */
  CHECK_EQ_INT(recv_hex(m, "000000ff"), HSP_MUX_EPROTO);
  /* Nested batches, up to the limit. */
  CHECK_EQ_INT(recv_hex(m, "0000000b0000080000050000020900"), 0);
  CHECK_EQ_INT(recv_hex(m, "0000000e00000b0000080000050000020900"), HSP_MUX_EPROTO);
  /* An accepted open, then the same id again: invalid. */
  b.accept = 1;
  CHECK_EQ_INT(recv_hex(m, "000101016100"), 0);
  CHECK_EQ_INT(recv_hex(m, "000101016100"), HSP_MUX_EPROTO);
  CHECK_EQ_INT(recv_hex(m, "01006869"), 0);
  CHECK(strstr(b.log, "msg 1 t0 hi\n") != NULL);
  /* A reject for our paired channel 1 (protomux's pairing race): that channel closes, the
   * session goes on; a second one, for the now free id, is ignored. */
  CHECK(hsp_mux_is_open(m, 1));
  CHECK_EQ_INT(recv_hex(m, "000201"), 0);
  CHECK(!hsp_mux_is_open(m, 1));
  CHECK(strstr(b.log, "close 1\n") != NULL);
  CHECK_EQ_INT(hsp_mux_channel_count(m), 0);
  CHECK_EQ_INT(recv_hex(m, "000201"), 0);
  CHECK_EQ_INT(recv_hex(m, "01006869"), 0); /* its messages are now ignored */
  for (size_t i = 0; i < b.qlen; i++) free(b.q[i].data);
  b.qlen = 0;
  hsp_mux_destroy(a.mux);
  hsp_mux_destroy(b.mux);
}

int main(void) {
  test_wire_bytes();
  test_open_message_close();
  test_reject_and_races();
  test_batches();
  test_many_channels();
  test_malformed();
  return check_summary("test_mux");
}
